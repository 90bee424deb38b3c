"""The pluggable "egress rows" step: how the NB rows for an egress gateway get written.

Tests describe what they want with an EgressSpec and hand it to a RowsWriter; the conftest picks
the writer with ``VEGD_E2E_ROWS``:

* ``vegd`` (default), VegdApplyRows: renders the VpcEgressGateway/Vpc/Subnet/NAD/Node/Pod
  manifests of every spec applied so far into a directory and runs ``vegd apply -f DIR`` (a
  subprocess of this interpreter, ``python -m vegd``) against the test stack. The rows come from
  vegd's planner, and the directory is the whole desired state: removing a spec re-applies the
  others, and vegd prunes the removed gateway's rows.
* ``hand``, HandWrittenRows: seed-faithful rows written with ovn-nbctl (shared/design.md section
  3), kept as the reference vegd's rows can be compared with.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ovnstack import OvnStack

from . import manifests
from .manifests import ClusterSpec, PodSpec
from .topology import mac_for


@dataclass
class BfdSpec:
    min_tx: int = 300
    min_rx: int = 300
    detect_mult: int = 3
    port_ip: str = "10.255.255.255"          # the VPC's dedicated BFD port (bfd@<vpc>)
    ttl_workaround_ip: str = ""               # unused BFD row on the subnet LRP (A3); "" = .254
    mode: str = "route"                       # spec.bfdMode (policy: vegd writers only)


@dataclass
class EgressSpec:
    name: str                                 # <namespace>/<name> of the VpcEgressGateway
    vpc: str                                  # logical router (= the Vpc's name)
    subnet_lrp: str                           # LRP of the gateways' internal subnet
    sources: list[str]                        # SNAT source CIDRs
    nexthops: list[str]                       # gateway instances' internal IPs
    bfd: BfdSpec | None = None
    priority: int = 29100
    chassis: list[str] = field(default_factory=lambda: ["chassis-a"])
    # forward-only sources (a policy with snat: false): routed to the gateways, not translated
    forward_sources: list[str] = field(default_factory=list)
    # what the vegd writer needs besides the above (lab.spec() fills it in)
    internal_subnet: str = ""                 # Subnet name of the gateways' eth0
    external_subnet: str = "ext"              # Subnet name of the external attachment
    instances: list[PodSpec] = field(default_factory=list)   # the gateway pods
    replicas: int | None = None               # spec.replicas; None = len(instances)
    cluster: ClusterSpec | None = None

    def nexthops_for(self, version: int) -> list[str]:
        return [n for n in self.nexthops if ipaddress.ip_address(n).version == version]

    @property
    def all_sources(self) -> list[str]:
        return [*self.sources, *self.forward_sources]

    @property
    def namespace_name(self) -> tuple[str, str]:
        ns, _, name = self.name.rpartition("/")
        return ns or "default", name


class RowsWriter(Protocol):
    name: str

    def apply(self, stack: OvnStack, spec: EgressSpec) -> None: ...

    def remove(self, stack: OvnStack, spec: EgressSpec) -> None: ...


def _uuid(stack: OvnStack, table: str, *conds: str) -> str:
    out = stack.nbctl("--bare", "--columns=_uuid", "find", table, *conds).split()
    if len(out) != 1:
        raise LookupError(f"{table} {conds}: {len(out)} rows")
    return out[0]


class HandWrittenRows:
    """Seed-faithful NB rows written with ovn-nbctl.

    BFD off: one reroute policy per source CIDR (priority 29100, ``ip4.src == <cidr>``,
    nexthops = every instance of that family).

    BFD on ("route" mode) on stock OVN 23.03, the "A3" arrangement of
    shared/reference/ovn-bfd-port.md: LRP ``bfd@<vpc>`` (port_ip/32, no peer,
    options:bfd-only=true) bound to HA_Chassis_Group ``bfd@<vpc>``; a dummy logical switch whose
    router-type LSP points at bfd@<vpc> (gives the port binding a peer, without which
    ovn-controller never runs the sessions); one BFD row per instance on bfd@<vpc>; one unused BFD
    row on the subnet LRP (so northd keeps TTL 255 on BFD packets routed out of it); per source
    and instance an ECMP src-ip static route with bfd=<row> and ecmp_symmetric_reply.
    """

    name = "hand"

    def apply(self, stack: OvnStack, spec: EgressSpec) -> None:
        ext = f"external_ids:vpc-egress-gateway={spec.name}"
        if spec.bfd is None:
            for src in spec.all_sources:
                v = ipaddress.ip_network(src).version
                hops = spec.nexthops_for(v)
                stack.nbctl("--", "--id=@p", "create", "Logical_Router_Policy",
                            f"priority={spec.priority}", f'match="ip{v}.src == {src}"',
                            "action=reroute", "nexthops=" + ",".join(f'"{h}"' for h in hops), ext,
                            f"external_ids:af={v}",
                            "--", "add", "Logical_Router", spec.vpc, "policies", "@p")
            return
        b = spec.bfd
        port = f"bfd@{spec.vpc}"
        hcg = port
        dummy_ls = f"bfd-dummy-{spec.vpc}"
        stack.nbctl("--may-exist", "lrp-add", spec.vpc, port, mac_for(b.port_ip),
                    f"{b.port_ip}/32", "--", "set", "Logical_Router_Port", port,
                    "options:bfd-only=true", f"external_ids:vpc={spec.vpc}")
        stack.nbctl("ha-chassis-group-add", hcg)
        for i, ch in enumerate(spec.chassis):
            stack.nbctl("ha-chassis-group-add-chassis", hcg, ch, str(100 - i))
        stack.nbctl("set", "Logical_Router_Port", port,
                    f"ha_chassis_group={_uuid(stack, 'HA_Chassis_Group', f'name={hcg}')}")
        lsp = f"{dummy_ls}-{spec.vpc}"
        stack.nbctl("--may-exist", "ls-add", dummy_ls, "--", "--may-exist", "lsp-add", dummy_ls,
                    lsp, "--", "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp,
                    "router", "--", "lsp-set-options", lsp, f"router-port={port}")
        timers = (f"min_tx={b.min_tx}", f"min_rx={b.min_rx}", f"detect_mult={b.detect_mult}")
        ttl_ip = b.ttl_workaround_ip or _last_host(stack, spec.subnet_lrp)
        stack.nbctl("create", "BFD", f"logical_port={spec.subnet_lrp}", f'dst_ip="{ttl_ip}"',
                    *timers, f"external_ids:vpc={spec.vpc}", "external_ids:purpose=ttl")
        for nh in spec.nexthops:
            bfd = stack.nbctl("create", "BFD", f"logical_port={port}", f'dst_ip="{nh}"', *timers,
                              ext).strip()
            for src in spec.all_sources:
                if ipaddress.ip_network(src).version != ipaddress.ip_address(nh).version:
                    continue
                stack.nbctl("--", "--id=@r", "create", "Logical_Router_Static_Route",
                            f'ip_prefix="{src}"', f'nexthop="{nh}"', "policy=src-ip", f"bfd={bfd}",
                            "options:ecmp_symmetric_reply=true", ext,
                            "--", "add", "Logical_Router", spec.vpc, "static_routes", "@r")

    def remove(self, stack: OvnStack, spec: EgressSpec) -> None:
        """Remove the gateway's own rows (policies, routes, BFD rows). The VPC-level rows of the
        BFD port (bfd@<vpc>, its HA_Chassis_Group, the dummy switch, the TTL row) stay."""
        cond = f"external_ids:vpc-egress-gateway={spec.name}"
        for table, col in (("Logical_Router_Policy", "policies"),
                           ("Logical_Router_Static_Route", "static_routes")):
            for u in stack.nbctl("--bare", "--columns=_uuid", "find", table, cond).split():
                stack.nbctl("remove", "Logical_Router", spec.vpc, col, u)
        for u in stack.nbctl("--bare", "--columns=_uuid", "find", "BFD", cond).split():
            stack.nbctl("destroy", "BFD", u)


def _last_host(stack: OvnStack, lrp: str) -> str:
    """An address of lrp's first network that nothing uses (.254 of a /24): the A3 TTL row."""
    nets = stack.nbctl("get", "Logical_Router_Port", lrp, "networks").split()
    net = ipaddress.ip_interface(nets[0].strip('"[],')).network
    return str(net.broadcast_address - 1)


@dataclass
class ApplyRun:
    """One `vegd apply` run: its directory, wall time, and JSON report."""

    directory: Path
    seconds: float
    report: dict[str, Any]

    def changed(self) -> int:
        return sum(len(o.get(k, [])) for o in self.report.get("owners", [])
                   for k in ("created", "updated", "deleted"))


class VegdApplyRows:
    """The rows come from vegd: manifests for every applied spec, then ``vegd apply -f DIR``.

    apply() adds or replaces the spec (by name) and applies the whole set; remove() drops it
    and applies the rest, so vegd prunes its rows. A VPC that once had a BFD spec keeps its
    bfdPort (as the hand writer keeps the VPC-level rows). ``bfd_port_mode`` is passed as
    ``--bfd-port-mode`` (``stock`` for Debian's OVN; env VEGD_E2E_BFD_PORT_MODE).
    """

    name = "vegd"

    def __init__(self, bfd_port_mode: str | None = None, workdir: Path | None = None):
        self.bfd_port_mode = bfd_port_mode or os.environ.get("VEGD_E2E_BFD_PORT_MODE", "stock")
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ve2e-manifests-"))
        self.specs: dict[str, EgressSpec] = {}
        self.bfd_ports: dict[str, str] = {}            # vpc -> bfdPort ip (sticky)
        self.runs: list[ApplyRun] = []

    def apply(self, stack: OvnStack, spec: EgressSpec) -> None:
        if spec.cluster is None or not spec.internal_subnet:
            raise ValueError(f"{spec.name}: the vegd writer needs spec.cluster and "
                             "spec.internal_subnet (use lab.spec())")
        self.specs[spec.name] = spec
        if spec.bfd is not None:
            self.bfd_ports[spec.vpc] = spec.bfd.port_ip
        self.run(stack)

    def remove(self, stack: OvnStack, spec: EgressSpec) -> None:
        self.specs.pop(spec.name, None)
        self.run(stack)

    def objects(self) -> list[dict[str, Any]]:
        """The manifests of the current set of specs."""
        return render(list(self.specs.values()), self.bfd_ports)

    def run(self, stack: OvnStack, *extra: str) -> ApplyRun:
        """Render and apply; raise with vegd's stderr when it does not exit 0."""
        directory = manifests.write(self.workdir / f"apply-{len(self.runs) + 1}", self.objects())
        cmd = [sys.executable, "-m", "vegd", "apply", "-f", str(directory),
               "--nb-connection", stack.nb_unix, "--sb-connection", stack.sb_unix,
               "--bfd-port-mode", self.bfd_port_mode, "--output", "json", *extra]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"vegd apply exited {proc.returncode}: {proc.stderr.strip()}\n"
                               f"{proc.stdout.strip()}\nmanifests: {directory}")
        run = ApplyRun(directory, seconds, json.loads(proc.stdout))
        self.runs.append(run)
        print(f"vegd apply #{len(self.runs)}: {seconds * 1000:.0f} ms, {run.changed()} row "
              f"change(s), {run.report.get('transactions')} transaction(s)")
        return run


def render(specs: list[EgressSpec], bfd_ports: dict[str, str] | None = None
           ) -> list[dict[str, Any]]:
    """Manifests for specs: the cluster (of the last spec that has one), a Vpc per VPC (with
    its bfdPort: bfd_ports, else from the specs' BFD), each VpcEgressGateway and its pods."""
    clusters = [s.cluster for s in specs if s.cluster is not None]
    if not clusters:
        return []
    cluster = clusters[-1]
    ports = dict(bfd_ports) if bfd_ports is not None else {
        s.vpc: s.bfd.port_ip for s in specs if s.bfd is not None}
    objs: list[dict[str, Any]] = [manifests.namespace("default")]
    objs += [manifests.node(n) for n in cluster.nodes]
    objs.append(manifests.attachment(cluster.attachment))
    objs += [manifests.subnet(s) for s in cluster.subnets]
    vpcs = sorted({s.vpc for s in cluster.subnets if not s.provider} | set(ports))
    objs += [manifests.vpc(v, ports.get(v)) for v in vpcs]
    for spec in specs:
        ns, name = spec.namespace_name
        bfd = None
        if spec.bfd is not None:   # the instance's view: minTX is OVN's min_rx
            bfd = {"minRX": spec.bfd.min_tx, "minTX": spec.bfd.min_rx,
                   "multiplier": spec.bfd.detect_mult}
        replicas = len(spec.instances) if spec.replicas is None else spec.replicas
        objs.append(manifests.gateway(
            ns, name, vpc_name=spec.vpc, replicas=replicas,
            internal_subnet=spec.internal_subnet, external_subnet=spec.external_subnet,
            snat_sources=spec.sources, forward_sources=spec.forward_sources, bfd=bfd,
            bfd_mode=spec.bfd.mode if spec.bfd is not None else "route"))
        for inst in spec.instances:
            labelled = replace(inst, labels={**inst.labels, manifests.GATEWAY_LABEL: name})
            objs.append(manifests.pod(labelled, cluster.attachment))
    objs += [manifests.pod(p, cluster.attachment) for p in cluster.pods]
    return objs


WRITERS: dict[str, type] = {"vegd": VegdApplyRows, "hand": HandWrittenRows}
DEFAULT_WRITER = "vegd"
