"""The containers of the Deployment vegd renders (vegd/workload) run the agent as a pod would.

The gateway's Kubernetes objects describe this lab's topology; the rendered init container's
command runs in the gateway namespace as root (privileged), then the main container's command
runs as a container runtime would start it: `/proc/sys` read-only, the capability bounding set
exactly the rendered `capabilities.add`, no_new_privs when `allowPrivilegeEscalation: false`.
It must get ready, run its BFD sessions, answer the rendered probe and stop cleanly.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from nslab import REPO, Lab, Topology, in_netns
from ovnstack import wait_for

from vegd.gateway.bfdd import control_socket_args
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.workload import deployment as wd

pytestmark = [pytest.mark.netns]

BFDD = Path("/usr/lib/frr/bfdd")
TX_MS = 200
PEERS = {"10.255.255.255": "192.168.0.2", "fd00:ffff::1": "fd00:ff::2"}  # port IP -> gateway
CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "KILL": 5, "SETGID": 6, "SETUID": 7,
            "NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13, "SYS_ADMIN": 21}


def cluster(bfd: bool) -> list[dict]:
    """Kubernetes objects for nslab's topology: VPC subnets behind the `vpc` namespace, the
    gateway's internal side 192.168.0.0/24, its external side 198.51.100.0/24 (TEST-NET-2)."""
    def subnet(name: str, cidr: str, gateway: str, **spec: str) -> dict:
        return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
                "spec": {"vpc": "vpc1", "cidrBlock": cidr, "gateway": gateway, **spec}}

    return [
        {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "vpc1"},
         "spec": {"bfdPort": {"enabled": True, "ip": ",".join(PEERS)}}},
        subnet("internal", "192.168.0.0/24,fd00:ff::/64", "192.168.0.1,fd00:ff::1"),
        subnet("snat", "10.0.1.0/24,fd00:1::/64", "10.0.1.1,fd00:1::1"),
        subnet("fwd", "10.0.2.0/24,fd00:2::/64", "10.0.2.1,fd00:2::1"),
        subnet("ext", "198.51.100.0/24,2001:db8:100::/64", "198.51.100.1,2001:db8:100::1",
               provider="ext.default"),
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "ext", "namespace": "default"}},
        {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
         "metadata": {"name": "lab", "namespace": "default", "uid": "lab-uid"},
         "spec": {"vpc": "vpc1", "replicas": 1, "internalSubnet": "internal",
                  "externalSubnet": "ext",
                  "bfd": {"enabled": bfd, "minTX": TX_MS, "minRX": TX_MS, "multiplier": 3},
                  "policies": [{"snat": True, "subnets": ["snat"]},
                               {"snat": False, "subnets": ["fwd"]}]}},
    ]


def rendered(bfd: bool) -> dict:
    snap = snapshot_from_objects(cluster(bfd))
    gw = snap.gateway("default/lab")
    assert gw is not None
    return wd.build_deployment(resolve_gateway(gw, snap), snap,
                               wd.WorkloadOptions(image="registry.example/vegd:1.0"))


def container_env(container: dict, state_dir: Path) -> dict[str, str]:
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}  # not fieldRefs
    assert env["VEGD_GATEWAY_STATE_DIR"] == wd.STATE_DIR
    env["VEGD_GATEWAY_STATE_DIR"] = str(state_dir)  # the emptyDir, as the lab has it
    # the observability ConfigMap's file, as the controller renders it, with conntrack on
    assert env["VEGD_GATEWAY_OBSERVABILITY_CONFIG"] == \
        f"{wd.OBSERVABILITY_DIR}/{wd.OBSERVABILITY_KEY}"
    config = state_dir / wd.OBSERVABILITY_KEY
    config.write_text(observability_config())
    env["VEGD_GATEWAY_OBSERVABILITY_CONFIG"] = str(config)
    return {**os.environ, **env}


def observability_config() -> str:
    objs = cluster(False)
    objs[-1]["spec"]["observability"] = {"conntrack": {"metrics": {"enabled": True},
                                                       "log": {"enabled": True}}}
    snap = snapshot_from_objects(objs)
    gw = snap.gateway("default/lab")
    assert gw is not None
    cm = wd.build_observability_configmap(resolve_gateway(gw, snap), wd.WorkloadOptions())
    return str(cm["data"][wd.OBSERVABILITY_KEY])


def as_container(sc: dict, *argv: str) -> list[str]:
    """A shell that makes /proc/sys read-only and limits capabilities as the runtime does for
    a container with security context `sc`, then execs argv."""
    assert sc["privileged"] is False and sc["capabilities"]["drop"] == ["ALL"]
    caps = ",".join(f"+{c.lower()}" for c in sc["capabilities"]["add"])
    nnp = ["--no-new-privs"] if sc.get("allowPrivilegeEscalation") is False else []
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && exec "
            + shlex.join(["setpriv", f"--bounding-set=-all,{caps}", "--inh-caps=-all", *nnp,
                          "--", *argv])]


def vegd_argv(container: dict) -> list[str]:
    """The container's command with `vegd` as this checkout's `python -m vegd`."""
    assert container["command"][0] == "vegd"
    return [sys.executable, "-m", "vegd", *container["command"][1:]]


def http_status(ns: str, path: str) -> int:
    with in_netns(ns):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:10669{path}", timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0


def sessions_up(ns: str) -> int:
    with in_netns(ns):
        try:
            with urllib.request.urlopen("http://127.0.0.1:10669/metrics", timeout=2) as resp:
                body = resp.read().decode()
        except OSError:
            return 0
    return len(re.findall(r"^vegd_gateway_bfd_session_up\{[^}]*\} 1(?:\.0)?$", body, re.MULTILINE))


def metric_value(ns: str, name: str) -> float | None:
    with in_netns(ns):
        try:
            with urllib.request.urlopen("http://127.0.0.1:10669/metrics", timeout=2) as resp:
                body = resp.read().decode()
        except OSError:
            return None
    match = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else None


def start_peer(lab: Lab, topo: Topology) -> None:
    """FRR bfdd in the vpc namespace on the BFD port IPs, as OVN runs the sessions."""
    directory = lab.tempdir() / "peer"
    directory.mkdir()
    stanzas = "".join(f" peer {gw} local-address {port}\n  receive-interval {TX_MS}\n"
                      f"  transmit-interval {TX_MS}\n !\n" for port, gw in PEERS.items())
    (directory / "bfdd.conf").write_text(f"bfd\n{stanzas}!\n")
    frr = pwd.getpwnam("frr")
    for item in (directory, *directory.iterdir()):
        os.chown(item, frr.pw_uid, frr.pw_gid)
    lab.popen(topo.vpc, str(BFDD), "-N", "vgwpeer", "-f", str(directory / "bfdd.conf"),
              "-i", str(directory / "bfdd.pid"), "-z", str(directory / "zserv.api"),
              "--vty_socket", str(directory), "-P", "0", *control_socket_args(BFDD, directory),
              "--log", f"file:{directory / 'bfdd.log'}")


def cap_mask(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s*([0-9a-f]+)$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1), 16)


@pytest.mark.parametrize("bfd", [False, True], ids=["no-bfd", "bfd"])
def test_rendered_containers_run_the_agent_with_their_capabilities(lab: Lab, topo: Topology,
                                                                   bfd: bool) -> None:
    if bfd and not BFDD.exists():
        pytest.skip("FRR bfdd is not installed")
    dep = rendered(bfd)
    (setup,) = dep["spec"]["template"]["spec"]["initContainers"]
    (main,) = dep["spec"]["template"]["spec"]["containers"]

    # The init container: privileged, root, the whole setup including sysctls.
    assert setup["securityContext"]["privileged"] is True
    done = subprocess.run(["ip", "netns", "exec", topo.gw, *vegd_argv(setup)],
                          env=container_env(setup, topo.state_dir),
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr

    # What the main container sees: /proc/sys is read-only, so it can only keep what is set.
    probe = subprocess.run(
        ["ip", "netns", "exec", topo.gw, *as_container(
            main["securityContext"], sys.executable, "-c",
            "open('/proc/sys/net/ipv4/ip_forward', 'w').write('1')")],
        capture_output=True, text=True, timeout=30, check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr

    if bfd:
        start_peer(lab, topo)
    log = topo.state_dir / "agent.log"
    with open(log, "ab") as out:
        agent = subprocess.Popen(["ip", "netns", "exec", topo.gw,
                                  *as_container(main["securityContext"], *vegd_argv(main))],
                                 env=container_env(main, topo.state_dir), cwd=REPO,
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    lab.procs.append(agent)
    try:
        wait_for(lambda: http_status(topo.gw, "/readyz") == 200, 20, what="agent ready")
    except TimeoutError:
        raise AssertionError(log.read_text()) from None
    wanted = sum(1 << CAP_BITS[c] for c in main["securityContext"]["capabilities"]["add"])
    assert cap_mask(agent.pid, "CapBnd") == wanted  # `ip netns exec`, sh, setpriv all exec
    assert cap_mask(agent.pid, "CapEff") == wanted
    no_new_privs = main["securityContext"].get("allowPrivilegeEscalation") is False
    assert no_new_privs is not bfd  # SYS_ADMIN (bfdd) and no_new_privs do not go together
    assert cap_mask(agent.pid, "NoNewPrivs") == int(no_new_privs)
    if bfd:
        wait_for(lambda: sessions_up(topo.gw) == 2, 20, what="both BFD sessions up")
    # conntrack events need nothing beyond the rendered capabilities (NET_ADMIN), and the
    # init container's setup switched accounting on for the end records' counters
    wait_for(lambda: metric_value(topo.gw, "vegd_gateway_conntrack_events_listening") == 1, 10,
             what="conntrack event socket open")
    assert metric_value(topo.gw, "vegd_gateway_conntrack_accounting_available") == 1

    # The rendered probes (exec: vpc1 is a custom VPC) pass inside the pod's namespace.
    for name in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = main[name]["exec"]["command"]
        result = subprocess.run(["ip", "netns", "exec", topo.gw, *command], capture_output=True,
                                text=True, timeout=10, check=False)
        assert result.returncode == 0, (name, result.stderr)

    agent.send_signal(signal.SIGTERM)
    assert agent.wait(15) == 0, log.read_text()
    # --keep-on-exit: the setup stays (the pod's namespace goes with the pod).
    assert subprocess.run(["ip", "netns", "exec", topo.gw, "nft", "list", "table", "inet",
                           "vegd"], capture_output=True, check=False).returncode == 0
