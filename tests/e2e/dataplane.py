"""A real OVN data plane for end-to-end tests: Open vSwitch (userspace datapath) + ovn-controller,
network namespaces as pods, gateways and an "external" network.

Layout (everything is private to one DataPlane; nothing touches the host network namespace):

* ``<prefix>ovs``   a network namespace in which ``ovs-vswitchd`` runs. br-int (a tap with the
  netdev datapath) and the OVS-side ends of every pod veth live here, so several data planes (and
  other engineers' tests) never collide on interface names such as ``br-int`` or ``ovs-netdev``.
* ``<prefix><name>`` one namespace per pod/gateway (``eth0`` bound to a logical switch port) and
  per external network (a Linux bridge ``br0`` that gateways join with ``net1``).
* ovsdb-server (conf.db), ovs-vswitchd and ovn-controller write pidfiles, logs and sockets into the
  OvnStack's directory; they are stopped by pid. ovn-controller 23.03 has no ``--unixctl``: its
  control socket is ``$OVN_RUNDIR/ovn-controller.<pid>.ctl`` (OVN_RUNDIR = the stack dir).

The recipe and its pitfalls: shared/reference/local-ovn-stack.md (scripts 5 and 6).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ovnstack import OvnStack, alive, stop_pid, wait_for

VS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# Debian's interpreter: starts in ~20 ms (pyenv's shim takes ~1 s, local-ovn-stack.md pitfall 14)
NS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
HERE = Path(__file__).resolve().parent
ECHO_SERVER = HERE / "echo_server.py"
TCP_CLIENT = HERE / "tcp_client.py"

EXTERNAL_BRIDGE_MAC = "02:00:c6:33:64:01"      # locally administered

REQUIRED_BINARIES = ("ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-vswitchd", "ovn-controller",
                     "ovn-northd", "ovn-nbctl", "ip", "ethtool", "iptables")


def missing_binaries(extra: Iterable[str] = ()) -> list[str]:
    return [b for b in (*REQUIRED_BINARIES, *extra) if not shutil.which(b)]


def run(*cmd: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None,
        input: str | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _split(cidr: str) -> tuple[str, int, int]:
    """'192.168.0.10/24' -> ('192.168.0.10', 24, 4)."""
    iface = ipaddress.ip_interface(cidr)
    return str(iface.ip), iface.network.prefixlen, iface.version


@dataclass
class Netns:
    """A namespace this DataPlane created. ``name`` is the short name, ``ns`` the real netns."""

    name: str
    ns: str
    mac: str = ""
    ips: list[str] = field(default_factory=list)      # with prefix length, as configured
    lsp: str = ""
    switch: str = ""
    host_veth: str = ""                                 # OVS-side veth (in the ovs namespace)

    @property
    def addrs(self) -> list[str]:
        return [_split(c)[0] for c in self.ips]

    def addr(self, version: int = 4) -> str:
        for c in self.ips:
            ip, _, v = _split(c)
            if v == version:
                return ip
        raise LookupError(f"{self.name} has no IPv{version} address")


@dataclass
class ExternalNetwork(Netns):
    """An "external" namespace: bridge ``br0`` (router_ips) + services on ``lo`` (server_ips)."""

    router_ips: list[str] = field(default_factory=list)
    server_ips: list[str] = field(default_factory=list)
    ports: int = 0


class DataPlane:
    """ovsdb-server + ovs-vswitchd (netdev) + ovn-controller for one OvnStack, plus namespaces.

    Use as a context manager or call start()/stop(). stop() is idempotent and cleans up everything
    this object created (daemons by pid, namespaces with their veths, background processes) even
    after a partial start.
    """

    def __init__(self, stack: OvnStack, chassis: str = "chassis-a", hostname: str | None = None,
                 prefix: str | None = None, encap_ip: str = "127.0.0.1"):
        self.stack = stack
        self.dir = stack.dir
        self.chassis = chassis
        self.hostname = hostname or chassis
        self.encap_ip = encap_ip
        self.prefix = prefix or f"ve2e-{secrets.token_hex(2)}-"
        self.ovs_ns = f"{self.prefix}ovs"
        self.env = stack.env
        self.ns: dict[str, Netns] = {}
        self._created_ns: list[str] = []
        self._procs: list[subprocess.Popen[str]] = []
        self._cleanups: list[Callable[[], None]] = []
        self._veth_seq = 0
        # short, world-traversable scratch dir (FRR runs as user frr; pytest's tmp is 0700 and
        # its paths can exceed the 108-byte sun_path FRR needs for its sockets)
        self.scratch = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.scratch.chmod(0o755)
        self.started_in: float | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> DataPlane:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ovs_db(self) -> str:
        return f"unix:{self.dir}/db.sock"

    def start(self, timeout: float = 20.0) -> DataPlane:
        t0 = time.monotonic()
        d = self.dir
        self._add_netns(self.ovs_ns)
        run("ip", "-n", self.ovs_ns, "link", "set", "lo", "up")
        run("ovsdb-tool", "create", f"{d}/conf.db", VS_SCHEMA, env=self.env)
        run("ovsdb-server", f"{d}/conf.db", "--detach", "--no-chdir", "-vconsole:off",
            f"--pidfile={d}/ovs-db.pid", f"--log-file={d}/ovs-db.log",
            f"--unixctl={d}/ovs-db.ctl", f"--remote=punix:{d}/db.sock", env=self.env)
        self.vsctl("--no-wait", "init")
        # ovs-vswitchd runs inside the private namespace: its taps and the veths stay there
        run("ip", "netns", "exec", self.ovs_ns, "ovs-vswitchd", self.ovs_db, "--detach",
            "--no-chdir", "-vconsole:off", f"--pidfile={d}/ovs-vswitchd.pid",
            f"--log-file={d}/ovs-vswitchd.log", f"--unixctl={d}/ovs-vswitchd.ctl", env=self.env)
        self.vsctl("set", "Open_vSwitch", ".",
                   f"external_ids:system-id={self.chassis}",
                   f"external_ids:hostname={self.hostname}",
                   f"external_ids:ovn-remote={self.stack.sb_unix}",
                   "external_ids:ovn-encap-type=geneve",
                   f"external_ids:ovn-encap-ip={self.encap_ip}",
                   "external_ids:ovn-bridge-datapath-type=netdev")
        self.vsctl("--may-exist", "add-br", "br-int", "--", "set", "Bridge", "br-int",
                   "datapath_type=netdev", "fail-mode=secure",
                   "other-config:disable-in-band=true")
        run("ip", "netns", "exec", self.ovs_ns, "ovn-controller", self.ovs_db, "--detach",
            "--no-chdir", "-vconsole:off", f"--pidfile={d}/ovn-controller.pid",
            f"--log-file={d}/ovn-controller.log", env=self.env)
        wait_for(lambda: self.hostname in self.stack.sbctl(
            "--bare", "--columns=hostname", "find", "Chassis", f"name={self.chassis}"),
            timeout, interval=0.02, what=f"chassis {self.chassis} in SB")
        self.started_in = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Stop everything this DataPlane started. Never raises; safe to call twice."""
        errors: list[str] = []
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning
                errors.append(f"cleanup {fn}: {e}")
        for p in self._procs:
            with contextlib.suppress(Exception):
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=5)
        self._procs.clear()
        for name in ("ovn-controller", "ovs-vswitchd", "ovs-db"):
            pidfile = self.dir / f"{name}.pid"
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            stop_pid(pid)
            if alive(pid):
                errors.append(f"{name} pid {pid} still alive")
        for ns in reversed(self._created_ns):
            proc = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True)
            if proc.returncode != 0 and "No such file" not in proc.stderr:
                errors.append(f"ip netns del {ns}: {proc.stderr.strip()}")
        self._created_ns.clear()
        shutil.rmtree(self.scratch, ignore_errors=True)
        if errors:  # surface, but do not mask the test's own failure
            print("DataPlane.stop problems:", *errors, sep="\n  ")

    def on_stop(self, fn: Callable[[], None]) -> None:
        """Register a cleanup that stop() runs (last registered first)."""
        self._cleanups.append(fn)

    # ------------------------------------------------------------------ tools
    def vsctl(self, *args: str) -> str:
        return run("ovs-vsctl", f"--db={self.ovs_db}", "--timeout=20", *args, env=self.env)

    def ofctl(self, *args: str) -> str:
        return run("ovs-ofctl", *args, env=self.env)

    def appctl_vswitchd(self, *args: str) -> str:
        return run("ovs-appctl", "-t", f"{self.dir}/ovs-vswitchd.ctl", *args, env=self.env)

    def appctl_controller(self, *args: str) -> str:
        pid = int((self.dir / "ovn-controller.pid").read_text().strip())
        return run("ovn-appctl", "-t", f"{self.dir}/ovn-controller.{pid}.ctl", *args,
                   env=self.env)

    def wait_hv_sync(self, timeout: int = 30) -> None:
        """Return once ovn-controller has installed flows for the current NB contents."""
        self.stack.nbctl(f"--timeout={timeout}", "--wait=hv", "sync")

    def wait_port_up(self, *lsps: str, timeout: float = 20.0) -> None:
        for lsp in lsps:
            wait_for(lambda lsp=lsp: self.stack.sbctl(
                "--bare", "--columns=up", "find", "Port_Binding", f"logical_port={lsp}",
                check=False).strip() == "true", timeout, interval=0.02,
                what=f"Port_Binding {lsp} up")

    def nsname(self, ns: str | Netns) -> str:
        if isinstance(ns, Netns):
            return ns.ns
        if ns in self.ns:
            return self.ns[ns].ns
        return ns

    def exec(self, ns: str | Netns, *cmd: str, check: bool = True, timeout: float = 60,
             input: str | None = None, env: dict[str, str] | None = None) -> str:
        """Run cmd inside namespace ns (short name, Netns or full netns name); return stdout.
        env: the whole environment (default: this process's)."""
        return run("ip", "netns", "exec", self.nsname(ns), *cmd, check=check, timeout=timeout,
                   input=input, env=env)

    def spawn(self, ns: str | Netns, *cmd: str, **popen: object) -> subprocess.Popen[str]:
        """Start a background process in ns; stop() kills it."""
        kw: dict[str, object] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL,
                                 "text": True}
        kw.update(popen)
        p = subprocess.Popen(["ip", "netns", "exec", self.nsname(ns), *cmd], **kw)  # type: ignore[call-overload]
        self._procs.append(p)
        return p

    # ------------------------------------------------------------------ namespaces
    def _add_netns(self, full: str) -> None:
        run("ip", "netns", "add", full)
        self._created_ns.append(full)

    def _new_netns(self, name: str) -> Netns:
        if name in self.ns:
            raise ValueError(f"namespace {name} exists")
        full = f"{self.prefix}{name}"
        self._add_netns(full)
        n = Netns(name=name, ns=full)
        self.ns[name] = n
        run("ip", "-n", full, "link", "set", "lo", "up")
        # no DAD: IPv6 addresses usable at once; no IPv6 on interfaces we did not address
        for k in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"):
            self.exec(n, "sysctl", "-qw", k, check=False)
        return n

    def _addr_add(self, ns: str, dev: str, cidr: str) -> None:
        _, _, v = _split(cidr)
        extra = ("nodad",) if v == 6 else ()
        run("ip", "-n", ns, "addr", "add", cidr, "dev", dev, *extra)

    def add_pod(self, name: str, switch: str, mac: str, ips: Sequence[str],
                gateway_ips: Sequence[str] = (), *, lsp: str | None = None,
                create_lsp: bool = True, ifname: str = "eth0") -> Netns:
        """A namespace with ``ifname`` bound to logical switch port ``lsp`` (default: name).

        ips carry their prefix length ("192.168.0.10/24", "fd00:10::10/64"); gateway_ips become
        default routes. With create_lsp the LSP is created on switch with "mac ip..." addresses;
        otherwise an existing LSP is bound. TX checksum offload is turned off on the veth
        (userspace datapath, pitfall 8).
        """
        lsp = lsp or name
        n = self._new_netns(name)
        n.mac, n.ips, n.lsp, n.switch = mac, list(ips), lsp, switch
        self._veth_seq += 1
        hv = f"p{self._veth_seq}-{name}"[:15]
        n.host_veth = hv
        run("ip", "-n", self.ovs_ns, "link", "add", hv, "type", "veth", "peer", "name", ifname,
            "netns", n.ns)
        run("ip", "-n", n.ns, "link", "set", ifname, "address", mac)
        for cidr in ips:
            self._addr_add(n.ns, ifname, cidr)
        run("ip", "-n", n.ns, "link", "set", ifname, "up")
        run("ip", "-n", self.ovs_ns, "link", "set", hv, "up")
        self.exec(n, "ethtool", "-K", ifname, "tx", "off")
        for gw in gateway_ips:
            fam = "-6" if ipaddress.ip_address(gw).version == 6 else "-4"
            run("ip", fam, "-n", n.ns, "route", "add", "default", "via", gw, "dev", ifname)
        if create_lsp:
            addrs = " ".join([mac, *(_split(c)[0] for c in ips)])
            self.stack.nbctl("--may-exist", "lsp-add", switch, lsp, "--",
                             "lsp-set-addresses", lsp, addrs)
        self.vsctl("add-port", "br-int", hv, "--", "set", "Interface", hv,
                   f"external_ids:iface-id={lsp}")
        return n

    def add_external_network(self, name: str = "ext",
                             router_ips: Sequence[str] = ("198.51.100.1/24",),
                             server_ips: Sequence[str] = ("203.0.113.10/32",)) -> ExternalNetwork:
        """An "external" namespace: bridge br0 carrying router_ips (the gateways' default
        gateway), server_ips on lo (targets off the gateways' subnet). TEST-NET addresses only."""
        for c in (*router_ips, *server_ips):
            _check_test_net(c)
        base = self._new_netns(name)
        ext = ExternalNetwork(name=base.name, ns=base.ns, ips=[*router_ips, *server_ips],
                              router_ips=list(router_ips), server_ips=list(server_ips))
        self.ns[name] = ext
        # a fixed MAC: a bridge otherwise takes the lowest MAC of its ports, so a gateway
        # attached later (scale-up) can change it under the others' ARP caches (blackhole)
        run("ip", "-n", ext.ns, "link", "add", "br0", "address", EXTERNAL_BRIDGE_MAC,
            "type", "bridge")
        for c in router_ips:
            self._addr_add(ext.ns, "br0", c)
        for c in server_ips:
            self._addr_add(ext.ns, "lo", c)
        run("ip", "-n", ext.ns, "link", "set", "br0", "up")
        return ext

    def attach_external(self, ns: str | Netns, ext: ExternalNetwork, ips: Sequence[str],
                        ifname: str = "net1") -> None:
        """Give namespace ns a second interface (net1) on ext's bridge."""
        for c in ips:
            _check_test_net(c)
        n = self.ns[ns] if isinstance(ns, str) else ns
        ext.ports += 1
        peer = f"{n.name}"[:12] + f"-{ext.ports}"
        run("ip", "-n", n.ns, "link", "add", ifname, "type", "veth", "peer", "name", peer,
            "netns", ext.ns)
        for c in ips:
            self._addr_add(n.ns, ifname, c)
        n.ips.extend(ips)
        run("ip", "-n", n.ns, "link", "set", ifname, "up")
        run("ip", "-n", ext.ns, "link", "set", peer, "master", "br0", "up")

    # ------------------------------------------------------------------ traffic
    def start_echo_server(self, ns: str | Netns, addr: str, port: int = 8080,
                          timeout: float = 10.0) -> subprocess.Popen[str]:
        """TCP server in ns that answers each connection with the client's source address."""
        p = self.spawn(ns, NS_PYTHON, str(ECHO_SERVER), addr, str(port))

        def listening() -> bool:
            if p.poll() is not None:
                raise RuntimeError(f"echo server in {ns} exited with {p.returncode}")
            out = self.exec(ns, "ss", "-Hltn", f"sport = :{port}", check=False)
            return bool(out.strip())

        wait_for(listening, timeout, interval=0.02, what=f"echo server {addr}:{port}")
        return p

    def tcp_connect(self, ns: str | Netns, dst: str, port: int = 8080, count: int = 1,
                    timeout: float = 2.0, bind: str | None = None) -> list[str]:
        """count sequential TCP connections from ns; each result is the echoed source address
        (which gateway SNATed the flow) or "fail:<reason>"."""
        args = [NS_PYTHON, str(TCP_CLIENT), "connects", dst, str(port), str(count), str(timeout)]
        if bind:
            args.append(bind)
        out = self.exec(ns, *args, timeout=count * (timeout + 1) + 10)
        return list(json.loads(out))

    def start_prober(self, ns: str | Netns, dst: str, port: int = 8080,
                     interval: float = 0.05, timeout: float = 0.4,
                     max_duration: float = 60.0) -> Prober:
        """Background prober in ns: a new TCP connection every interval seconds (each given
        timeout to connect and get the echo) until stopped or max_duration. Results stream in
        while it runs (Prober.results)."""
        p = self.spawn(ns, NS_PYTHON, str(TCP_CLIENT), "probe", dst, str(port),
                       str(max_duration), str(interval), str(timeout), stdout=subprocess.PIPE)
        return Prober(p)

    def kill(self, p: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
        if p.poll() is None:
            p.send_signal(sig)
        p.wait(timeout=10)


# a reset seen by recv, or by the prober's connect check when it came before the check did
RESETS = frozenset({"fail:ConnectionResetError", f"fail:errno{errno.ECONNRESET}"})


class Prober:
    """Reads a running tcp_client.py probe's JSON lines in a thread."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.proc = proc
        self._rows: list[tuple[float, float, str]] = []  # (start, end, result)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                r = json.loads(line)
                row = (float(r["t"]), float(r["e"]), str(r["r"]))
                with self._lock:
                    self._rows.append(row)

    @property
    def results(self) -> list[tuple[float, str]]:
        """(start time in epoch seconds, result) sorted by start time."""
        return [(t, r) for t, _, r in self.spans()]

    def spans(self) -> list[tuple[float, float, str]]:
        """(start, end, result) of each connection, sorted by start."""
        with self._lock:
            return sorted(self._rows)

    def resets_in(self, windows: Sequence[tuple[float, float]]
                  ) -> list[list[tuple[float, float, str]]]:
        """Per window (start, end) in which the path can change, the connections reset while
        open in it: one open at that instant can have its handshake hashed to one instance and
        the rest to another, whose SNAT the server does not know (an established connection
        that moves is reset). Callers allow at most one per window."""
        spans = [span for span in self.spans() if span[2] in RESETS]
        return [[(t, e, r) for t, e, r in spans if t < end and e > start]
                for start, end in windows]

    def stop(self) -> list[tuple[float, str]]:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self._thread.join(timeout=5)
        return self.results


TEST_NETS = [ipaddress.ip_network(n) for n in
             ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8::/32")]


def _check_test_net(cidr: str) -> None:
    ip = ipaddress.ip_interface(cidr).ip
    if not any(ip in net for net in TEST_NETS):
        raise ValueError(f"{cidr}: external addresses must be TEST-NET (RFC 5737/3849)")
