"""Network namespaces for the gateway tests: a lab that creates, wires and removes them.

Namespaces are named `vgw-<role>-<random>` so concurrent test runs never collide; the lab removes
exactly the namespaces (and so the veths inside them) it created, and stops processes by pid.

Topology built by `gateway_topology()` (everything exists only inside these namespaces; the external
side uses TEST-NET addresses):

  client ──eth0── vpc (stands in for OVN: router + BFD port IPs) ──eth1── gw:eth0 [gateway] gw:net1
  10.0.1.10 (SNAT)    10.0.1.1 / 10.0.2.1                          192.168.0.1   192.168.0.2
  10.0.2.10 (fwd)     lo 10.255.255.255 (BFD port)                                198.51.100.2
  fd00:1::10, fd00:2::10                                                          2001:db8:100::2
                                                                                        │
                                     ext: eth0 198.51.100.1, 2001:db8:100::1 (the external gateway)
                                          lo 203.0.113.10, 2001:db8:203::10 (the "internet" server)
                                          routes only the forward-only sources back to the gateway
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ovnstack import stop_pid
from pyroute2 import IPRoute, netns

CLONE_NEWNET = 0x40000000
IFA_F_NODAD = 0x02
REPO = Path(__file__).resolve().parents[2]
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with this thread inside the namespace: sockets made here stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
        yield
    finally:
        if _libc.setns(own, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back to the test's namespace")
        os.close(own)
        os.close(target)


class Lab:
    def __init__(self) -> None:
        self.suffix = secrets.token_hex(3)
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.dirs: list[Path] = []

    def ns(self, role: str) -> str:
        name = f"vgw-{role}-{self.suffix}"
        netns.create(name)
        self.namespaces.append(name)
        with in_netns(name):
            # No DAD: IPv6 addresses are usable at once, and no test waits for them.
            for conf in ("all", "default"):
                Path(f"/proc/sys/net/ipv6/conf/{conf}/accept_dad").write_text("0")
        with IPRoute(netns=name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        return name

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        with IPRoute(netns=ns_a) as ipr:
            ipr.link("add", ifname=if_a, kind="veth",
                     peer={"ifname": if_b, "net_ns_fd": f"/run/netns/{ns_b}"})
            ipr.link("set", index=ipr.link_lookup(ifname=if_a)[0], state="up")
        with IPRoute(netns=ns_b) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=if_b)[0], state="up")

    def addr(self, ns: str, ifname: str, *cidrs: str) -> None:
        with IPRoute(netns=ns) as ipr:
            index = ipr.link_lookup(ifname=ifname)[0]
            for cidr in cidrs:
                address, prefix = cidr.split("/")
                ipr.addr("add", index=index, address=address, prefixlen=int(prefix),
                         flags=IFA_F_NODAD)

    def route(self, ns: str, dst: str, gateway: str) -> None:
        with IPRoute(netns=ns) as ipr:
            ipr.route("add", dst=dst, gateway=gateway)

    def sysctl(self, ns: str, name: str, value: str) -> None:
        with in_netns(ns):
            Path("/proc/sys", name).write_text(value)

    def tempdir(self) -> Path:
        """A directory bfdd (user frr) can reach: /tmp/vgw-XXXX, mode 755."""
        path = Path(tempfile.mkdtemp(prefix="vgw-", dir="/tmp"))
        path.chmod(0o755)
        self.dirs.append(path)
        return path

    def popen(self, ns: str, *cmd: str, log: Path | None = None) -> subprocess.Popen[bytes]:
        # `ip netns exec` execs the command, so the pid is the command's own.
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        if log:
            out.close()
        self.procs.append(proc)
        return proc

    def run(self, ns: str, *cmd: str, timeout: float = 30,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                              timeout=timeout, check=False, cwd=REPO, input=stdin)

    def vegd(self, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(ns, sys.executable, "-m", "vegd", "gateway", *args)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                stop_pid(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self._kill_strays()
        for name in reversed(self.namespaces):
            with contextlib.suppress(OSError):
                netns.remove(name)
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


    def _kill_strays(self) -> None:
        """Kill what still runs inside our namespaces (e.g. the bfdd of an agent that had to be
        SIGKILLed): found by the namespace inode of each pid, never by process name."""
        inodes = set()
        for name in self.namespaces:
            with contextlib.suppress(OSError):
                inodes.add(os.stat(f"/run/netns/{name}").st_ino)
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in inodes:
                    stop_pid(int(entry))
            except OSError:
                continue


class Topology:
    """The four namespaces of the module docstring, and the agent's flags that fit them."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.client, self.vpc = lab.ns("cli"), lab.ns("vpc")
        self.gw, self.ext = lab.ns("gw"), lab.ns("ext")
        lab.veth(self.client, "eth0", self.vpc, "eth0")
        lab.veth(self.vpc, "eth1", self.gw, "eth0")
        lab.veth(self.gw, "net1", self.ext, "eth0")
        lab.addr(self.client, "eth0", "10.0.1.10/24", "10.0.2.10/24", "fd00:1::10/64",
                 "fd00:2::10/64")
        lab.route(self.client, "0.0.0.0/0", "10.0.1.1")
        lab.route(self.client, "::/0", "fd00:1::1")
        lab.addr(self.vpc, "eth0", "10.0.1.1/24", "10.0.2.1/24", "fd00:1::1/64", "fd00:2::1/64")
        lab.addr(self.vpc, "eth1", "192.168.0.1/24", "fd00:ff::1/64")
        lab.addr(self.vpc, "lo", "10.255.255.255/32", "fd00:ffff::1/128")
        lab.route(self.vpc, "0.0.0.0/0", "192.168.0.2")
        lab.route(self.vpc, "::/0", "fd00:ff::2")
        lab.sysctl(self.vpc, "net/ipv4/ip_forward", "1")
        lab.sysctl(self.vpc, "net/ipv6/conf/all/forwarding", "1")
        lab.addr(self.gw, "eth0", "192.168.0.2/24", "fd00:ff::2/64")
        lab.addr(self.gw, "net1", "198.51.100.2/24", "2001:db8:100::2/64")
        lab.addr(self.ext, "eth0", "198.51.100.1/24", "2001:db8:100::1/64")
        lab.addr(self.ext, "lo", "203.0.113.10/32", "2001:db8:203::10/128")
        # The external network routes the forward-only sources (not the SNAT ones) to the gateway.
        lab.route(self.ext, "10.0.2.0/24", "198.51.100.2")
        lab.route(self.ext, "fd00:2::/64", "2001:db8:100::2")
        self.state_dir = lab.tempdir()

    def flags(self, *extra: str) -> list[str]:
        return ["--internal-interface", "eth0", "--external-interface", "net1",
                "--internal-gateway-ipv4", "192.168.0.1", "--external-gateway-ipv4", "198.51.100.1",
                "--internal-gateway-ipv6", "fd00:ff::1", "--external-gateway-ipv6",
                "2001:db8:100::1",
                "--snat-sources", "10.0.1.0/24,fd00:1::/64",
                "--forward-sources", "10.0.2.0/24,fd00:2::/64",
                "--state-dir", str(self.state_dir), *extra]


def dump(lab: Lab, ns: str) -> str:
    """Everything setup may touch in a namespace, as text to compare."""
    parts = []
    for cmd in (["ip", "-4", "rule"], ["ip", "-6", "rule"],
                ["ip", "-4", "route", "show", "table", "all"],
                ["ip", "-6", "route", "show", "table", "all"],
                ["ip", "-d", "link", "show"], ["ip", "addr", "show"],
                ["nft", "list", "ruleset"]):
        result = lab.run(ns, *cmd)
        assert result.returncode == 0, result.stderr
        # IPv6 addresses' lifetimes and link statistics change by themselves; drop them.
        lines = [line for line in result.stdout.splitlines() if "valid_lft" not in line]
        parts.append("$ " + " ".join(cmd) + "\n" + "\n".join(lines))
    with in_netns(ns):
        for name in ("net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding",
                     "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/eth0/rp_filter",
                     "net/ipv4/conf/net1/rp_filter"):
            path = Path("/proc/sys", name)
            parts.append(f"{name} = {path.read_text().strip() if path.exists() else '-'}")
    return "\n".join(parts)
