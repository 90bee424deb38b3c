"""`vegd explain` and `vegd status`, computed: which gateway a source leaves through and why.

Pure: the answer is derived from the same plan vegd writes (so it cannot disagree with it), plus
what the caller read from NB (BFD.status per gateway and nexthop, and which of the planned rows
exist there). For each gateway of the source's VPC it says whether the source is selected (by a
policy's prefix or by a selector), by which rows, through which instances with their BFD state,
SNAT or forward and with which egress addresses, or why not; gateways of other VPCs are listed
with that reason. Traffic of a selected source with no usable instance is dropped (fail closed).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from vegd.model.errors import ValidationError
from vegd.model.instances import Instance, pod_subnet, selected_pods, workload
from vegd.model.objects import IPAddress, Pod, Snapshot, VpcEgressGateway
from vegd.model.resolve import ResolvedGateway, resolve_gateway
from vegd.plan import names
from vegd.plan.gateway import plan_gateway
from vegd.plan.rows import AddressSet, Desired, RouterPolicy, Row, StaticRoute
from vegd.plan.settings import PlanSettings

# gateway key -> nexthop IP -> BFD.status as ovn-northd wrote it
BfdStatus = Mapping[str, Mapping[str, str]]
# gateway key -> (table, natural key) of the rows NB holds for it; None: NB not asked
NbKeys = Mapping[str, set[tuple[str, tuple[str, ...]]]]

EGRESS, FAIL_CLOSED, NOT_SELECTED = "egress", "fail-closed", "not-selected"


@dataclass(frozen=True)
class RowView:
    table: str
    match: str  # the policy match, the route's ip_prefix, the address set's name
    priority: int | None = None
    action: str = ""
    nexthops: tuple[str, ...] = ()
    in_nb: bool | None = None  # None: NB was not read


@dataclass(frozen=True)
class Nexthop:
    ip: str
    pod: str
    node: str
    bfd: str  # up, down, init, admin_down, unknown (no status yet), missing (no row), off
    external_ips: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return self.bfd in ("up", "off")


@dataclass(frozen=True)
class Verdict:
    gateway: str
    outcome: str  # egress, fail-closed, not-selected
    reason: str
    via: str = ""  # policy, selector
    mode: str = ""  # snat, forward
    rows: tuple[RowView, ...] = ()
    nexthops: tuple[Nexthop, ...] = ()
    egress_ips: tuple[str, ...] = ()
    local_node: str = ""  # trafficPolicy Local: the node whose instances are preferred


@dataclass(frozen=True)
class Explanation:
    source: str  # namespace/name, or the address asked about
    ips: tuple[str, ...]
    vpc: str
    verdicts: tuple[Verdict, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class GatewayStatus:
    gateway: str
    vpc: str
    valid: bool
    problem: str = ""
    bfd: bool = False
    nexthops: tuple[Nexthop, ...] = ()
    rows: Mapping[str, int] = field(default_factory=dict)  # owned rows per table, from NB


def explain(source: Pod, snap: Snapshot, settings: PlanSettings, bfd: BfdStatus,
            nb_keys: NbKeys | None = None, invalid: Mapping[str, str] | None = None,
            asked: str = "") -> Explanation:
    """Where `source` (a pod, or a bare address wrapped as one) egresses."""
    ips = tuple(str(ip) for ip in source.ips)
    subnet = pod_subnet(source, snap)
    name = asked or source.key
    if subnet is None:
        return Explanation(name, ips, "", summary=f"{name}: no subnet holds {', '.join(ips)}: "
                           "not a pod address vegd knows")
    vpc = subnet.vpc
    verdicts: list[Verdict] = []
    for key, problem in sorted((invalid or {}).items()):
        verdicts.append(Verdict(key, NOT_SELECTED, f"gateway invalid: {problem}"))
    for gw in sorted(snap.gateways, key=lambda g: g.key):
        if gw.vpc != vpc:
            verdicts.append(Verdict(gw.key, NOT_SELECTED, f"other VPC: the gateway serves VPC "
                                    f"{gw.vpc}, the source is in VPC {vpc}"))
            continue
        verdicts.append(_verdict(gw, source, snap, settings, bfd.get(gw.key, {}),
                                 None if nb_keys is None else nb_keys.get(gw.key, set())))
    chosen = [v for v in verdicts if v.outcome != NOT_SELECTED]
    if not chosen:
        summary = f"{name} is selected by no gateway: it leaves VPC {vpc} by its normal routing"
    else:
        summary = "; ".join(_summary(name, v) for v in chosen)
    return Explanation(name, ips, vpc, tuple(verdicts), summary)


def _summary(name: str, v: Verdict) -> str:
    if v.outcome == FAIL_CLOSED:
        return f"{name} is selected by {v.gateway} ({v.via}) but its traffic is dropped: {v.reason}"
    hops = ", ".join(h.ip for h in v.nexthops if h.usable)
    return (f"{name} egresses through {v.gateway} ({v.via}, {v.mode}) via {hops}, leaving as "
            f"{', '.join(v.egress_ips)}")


def _verdict(gw: VpcEgressGateway, source: Pod, snap: Snapshot, settings: PlanSettings,
             bfd: Mapping[str, str], nb_keys: set[tuple[str, tuple[str, ...]]] | None) -> Verdict:
    if gw.deleting:
        return Verdict(gw.key, NOT_SELECTED, "the gateway is being deleted")
    try:
        resolved = resolve_gateway(gw, snap, settings.policy_bfd_sessions,
                                   settings.bfd_port_mode)
    except ValidationError as exc:
        return Verdict(gw.key, NOT_SELECTED, f"gateway invalid: {exc.field}: {exc.message}")
    via, mode = _selection(resolved, source, snap)
    if not via:
        return Verdict(gw.key, NOT_SELECTED, "no policy prefix and no selector matches the "
                       "source")
    desired = plan_gateway(resolved, snap, settings)
    rows = tuple(_view(row, nb_keys) for row in _rows_for(desired, source))
    instances = workload(resolved, snap).instances
    hops = tuple(_nexthop(i, source, gw, bfd) for i in instances if _hop_ip(i, source))
    local = _local_node(gw, source, instances)
    usable = [h for h in hops if h.usable]
    if local:
        usable = [h for h in usable if h.node == local] or usable
    closed = f"the {names.DROP_PRIORITY} drop takes what leaves the VPC (fail closed)"
    if not hops:
        return Verdict(gw.key, FAIL_CLOSED, f"no instance is running: {closed}", via, mode, rows)
    if not usable:
        return Verdict(gw.key, FAIL_CLOSED, f"every instance's BFD session is down: {closed}",
                       via, mode, rows, hops)
    egress = tuple(ip for h in usable for ip in h.external_ips) if mode == "snat" else \
        tuple(str(ip) for ip in source.ips)
    reason = f"selected by {'a policy prefix' if via == 'policy' else 'a selector'}"
    if local:
        reason += f"; trafficPolicy Local prefers the instances on node {local}"
    return Verdict(gw.key, EGRESS, reason, via, mode, rows, hops, egress, local)


def _selection(r: ResolvedGateway, source: Pod, snap: Snapshot) -> tuple[str, str]:
    """(policy | selector | "", snat | forward) for the source."""
    for ip in source.ips:
        sources = r.sources[ip.version]
        if any(ip in net for net in sources.forward):
            return "policy", "forward"  # forward-only wins over a SNAT prefix it contains
        if any(ip in net for net in sources.snat):
            return "policy", "snat"
    if source.name and any(p.key == source.key for p in selected_pods(r, snap)):
        return "selector", "snat"
    return "", ""


def _rows_for(desired: Desired, source: Pod) -> list[Row]:
    """The planned rows that act on the source's packets, highest priority first."""
    address_sets = [r for r in desired.rows if isinstance(r, AddressSet)
                    and _any_in(source.ips, r.addresses)]
    sets = {r.name for r in address_sets}
    policies = [r for r in desired.rows if isinstance(r, RouterPolicy)
                and _match_selects(r.match, source.ips, sets)]
    routes = [r for r in desired.rows if isinstance(r, StaticRoute)
              and _any_in(source.ips, (r.ip_prefix,))]
    return [*address_sets, *sorted(policies, key=lambda p: -p.priority), *routes]


def _match_selects(match: str, ips: tuple[IPAddress, ...], sets: set[str]) -> bool:
    """Whether `ip4.src == X && ...` selects one of ips (X a prefix, an address or $set)."""
    head = match.split("&&", 1)[0].strip()
    if ".src == " not in head:
        return False
    value = head.split(".src == ", 1)[1].strip()
    if value.startswith("$"):
        return value[1:] in sets
    return _any_in(ips, (value,))


def _any_in(ips: tuple[IPAddress, ...], prefixes: tuple[str, ...]) -> bool:
    for text in prefixes:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if any(ip.version == net.version and ip in net for ip in ips):
            return True
    return False


def _view(row: Row, nb_keys: set[tuple[str, tuple[str, ...]]] | None) -> RowView:
    in_nb = None if nb_keys is None else (row.table, row.key) in nb_keys
    if isinstance(row, RouterPolicy):
        return RowView(row.table, row.match, row.priority, row.action, row.nexthops, in_nb)
    if isinstance(row, StaticRoute):
        return RowView(row.table, row.ip_prefix, None, f"route ({row.policy})", (row.nexthop,),
                       in_nb)
    assert isinstance(row, AddressSet)
    return RowView(row.table, row.name, None, "address set holding the source", (), in_nb)


def _hop_ip(instance: Instance, source: Pod) -> str:
    """The instance's address in a family the source has."""
    for ip in source.ips:
        hop = instance.ip(4 if ip.version == 4 else 6)
        if hop is not None:
            return str(hop)
    return ""


def _nexthop(instance: Instance, source: Pod, gw: VpcEgressGateway,
             bfd: Mapping[str, str]) -> Nexthop:
    ip = _hop_ip(instance, source)
    if not gw.bfd.enabled:
        state = "off"
    elif ip not in bfd:
        state = "missing"
    else:
        state = bfd[ip] or "unknown"
    return Nexthop(ip, instance.pod, instance.node, state,
                   tuple(str(e) for e in instance.external))


def _local_node(gw: VpcEgressGateway, source: Pod, instances: tuple[Instance, ...]) -> str:
    if gw.traffic_policy != "Local" or not source.node_name:
        return ""
    return source.node_name if any(i.node == source.node_name for i in instances) else ""


# -- vegd status ---------------------------------------------------------------------------------

def gateway_statuses(snap: Snapshot, settings: PlanSettings, bfd: BfdStatus,
                     rows: Mapping[str, Mapping[str, int]],
                     invalid: Mapping[str, str] | None = None) -> tuple[GatewayStatus, ...]:
    """Every gateway with its instances, their BFD state and the rows NB holds for it."""
    out = [GatewayStatus(key, "", False, problem, rows=rows.get(key, {}))
           for key, problem in sorted((invalid or {}).items())]
    for gw in sorted(snap.gateways, key=lambda g: g.key):
        try:
            resolved = resolve_gateway(gw, snap, settings.policy_bfd_sessions,
                                   settings.bfd_port_mode)
        except ValidationError as exc:
            out.append(GatewayStatus(gw.key, gw.vpc, False, f"{exc.field}: {exc.message}",
                                     gw.bfd.enabled, rows=rows.get(gw.key, {})))
            continue
        work = workload(resolved, snap)
        hops = []
        for inst in work.instances:
            for ip in inst.internal:
                state = "off" if not gw.bfd.enabled else (bfd.get(gw.key, {}).get(str(ip))
                                                           or "missing")
                hops.append(Nexthop(str(ip), inst.pod, inst.node, state,
                                    tuple(str(e) for e in inst.external)))
        out.append(GatewayStatus(gw.key, gw.vpc, True, "; ".join(work.problems),
                                 gw.bfd.enabled, tuple(hops), rows.get(gw.key, {})))
    return tuple(out)


def address_source(address: IPAddress, snap: Snapshot) -> tuple[Pod, str]:
    """The pod holding `address`, or a bare source with that address (policies only)."""
    for pod in snap.all_pods():
        if address in pod.ips and not pod.host_network:
            return pod, pod.key
    return Pod(namespace="", name="", ips=(address,)), str(address)
