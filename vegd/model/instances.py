"""Which pods are a gateway's instances, and which pods its selectors choose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vegd.model.objects import (
    FAMILIES,
    GATEWAY_LABEL,
    Family,
    IPAddress,
    IPNetwork,
    IPPool,
    Pod,
    PodSelection,
    Snapshot,
    Subnet,
    VpcEgressGateway,
)
from vegd.model.resolve import ResolvedGateway


@dataclass(frozen=True)
class Instance:
    """A gateway pod that carries traffic: running, addressed, attached to the external network."""

    pod: str  # namespace/name
    node: str
    internal: tuple[IPAddress, ...]  # first pod IP of each family
    external: tuple[IPAddress, ...]  # addresses on the external attachment

    def ip(self, family: Family) -> IPAddress | None:
        return next((ip for ip in self.internal if ip.version == family), None)


@dataclass(frozen=True)
class Workload:
    instances: tuple[Instance, ...]
    problems: tuple[str, ...]  # why other pods of the gateway do not qualify
    pool_shortage: tuple[str, ...] = ()  # named IPPools too small for the replicas


def gateway_pods(gw: VpcEgressGateway, snap: Snapshot) -> list[Pod]:
    label = gw.pod_label  # shortened for names over 63 characters
    return sorted((p for p in snap.pods_in(gw.namespace)
                   if p.label_map.get(GATEWAY_LABEL) == label), key=lambda p: p.name)


def workload(resolved: ResolvedGateway, snap: Snapshot) -> Workload:
    attachment = resolved.external_subnet.attachment
    instances: list[Instance] = []
    problems: list[str] = []
    for pod in gateway_pods(resolved.gateway, snap):
        if pod.deleting:
            continue
        if pod.phase != "Running":
            problems.append(f"pod {pod.key} is {pod.phase or 'not scheduled'}")
            continue
        internal = tuple(ip for ip in (pod.ip(f) for f in FAMILIES) if ip is not None)
        if not internal:
            problems.append(f"pod {pod.key} has no IP yet")
            continue
        if not pod.has_network_status:
            problems.append(f"pod {pod.key} has no network-status annotation")
            continue
        external = tuple(ip for n in pod.networks if n.name == attachment for ip in n.ips)
        if not external:
            problems.append(f"pod {pod.key} has no IP on network {attachment or '(none)'}")
            continue
        instances.append(Instance(pod.key, pod.node_name, internal, external))
    if len(instances) != resolved.gateway.replicas:
        problems.append(f"{len(instances)} of {resolved.gateway.replicas} instances are ready")
    return Workload(tuple(instances), tuple(problems), pool_shortage(resolved, snap))


def _pool_capacity(pool: IPPool, subnet: Subnet) -> int:
    """Addresses of the pool inside the subnet, counting each family once per instance (the
    smallest family decides when the subnet is dual-stack)."""
    counts = []
    for family in subnet.families:
        cidr = subnet.cidr(family)
        assert cidr is not None
        total = 0
        for first, last in pool.ranges:
            if first.version != family:
                continue
            lo = max(int(first), int(cidr.network_address))
            hi = min(int(last), int(cidr.broadcast_address))
            total += max(0, hi - lo + 1)
        counts.append(total)
    return min(counts) if counts else 0


def _side_ips(pod: Pod, side: str, attachment: str) -> tuple[IPAddress, ...]:
    if side == "internal":
        return pod.ips
    return tuple(ip for n in pod.networks if n.name == attachment for ip in n.ips)


def pool_shortage(resolved: ResolvedGateway, snap: Snapshot) -> tuple[str, ...]:
    """Named IPPools that cannot give every replica an address: the addresses this gateway's
    pods already hold from the pool, plus what Kube-OVN reports free (or, without a status, the
    pool's size), fewer than replicas. Kube-OVN does not check this; pods would stay Pending."""
    gw = resolved.gateway
    pods = [p for p in gateway_pods(gw, snap) if not p.deleting]
    attachment = resolved.external_subnet.attachment
    out = []
    for side, name, subnet in (("internal", gw.internal_ip_pool, resolved.internal_subnet),
                               ("external", gw.external_ip_pool, resolved.external_subnet)):
        pool = snap.ip_pool(name) if name else None
        if pool is None:
            continue
        held = sum(1 for p in pods if any(pool.contains(ip) for ip in _side_ips(p, side,
                                                                               attachment)))
        free = [pool.free(f) for f in subnet.families]
        if all(n is not None for n in free) and free:
            have = held + min(n for n in free if n is not None)
            what = f"{min(n for n in free if n is not None)} free address(es)"
        else:
            have = _pool_capacity(pool, subnet)
            what = f"{have} address(es) in subnet {subnet.name}"
            held = 0
        if have < gw.replicas:
            held_text = f" and {held} held by this gateway's pods" if held else ""
            out.append(f"{side} IPPool {pool.name} has {what}{held_text}, fewer than the "
                       f"{gw.replicas} replicas need")
    return tuple(out)


def pod_subnet(pod: Pod, snap: Snapshot) -> Subnet | None:
    """The pod's subnet: from its logical_switch annotation, else the subnet holding its IP."""
    if pod.logical_switch:
        return snap.subnet(pod.logical_switch)
    best: Subnet | None = None
    best_len = -1
    for subnet in snap.subnets:
        for cidr in subnet.cidrs:
            if any(ip in cidr for ip in pod.ips) and cidr.prefixlen > best_len:
                best, best_len = subnet, cidr.prefixlen
    return best


def workload_pod(pod: Pod) -> bool:
    return pod.phase not in ("Succeeded", "Failed") and not pod.deleting and not pod.host_network \
        and bool(pod.ips)


def _vpc_pods(resolved: ResolvedGateway, snap: Snapshot) -> list[Pod]:
    """Live workload pods of the gateway's VPC, gateway pods excepted (every namespace)."""
    vpc = resolved.vpc.name
    return [p for ns in snap.pod_namespaces() for p in _workload_pods(snap, ns).get(vpc, ())]


def _workload_pods(snap: Snapshot, namespace: str) -> dict[str, list[Pod]]:
    """VPC -> the live workload pods of one namespace, made once per snapshot and namespace,
    and only for the namespaces some selector asks about."""
    def group() -> dict[str, list[Pod]]:
        out: dict[str, list[Pod]] = {}
        for pod in snap.pods_in(namespace):
            if not workload_pod(pod) or GATEWAY_LABEL in pod.label_map:
                continue
            subnet = pod_subnet(pod, snap)
            if subnet is not None:
                out.setdefault(subnet.vpc, []).append(pod)
        return out
    return snap.memo(f"workload-pods:{namespace}", group)


def selected_pods(resolved: ResolvedGateway, snap: Snapshot) -> tuple[Pod, ...]:
    """Pods of the gateway's VPC matched by any of its selectors (its own pods excepted)."""
    return pods_selected_by(resolved, snap, resolved.gateway.selectors)


def pods_selected_by(resolved: ResolvedGateway, snap: Snapshot,
                     selections: tuple[PodSelection, ...]) -> tuple[Pod, ...]:
    """Pods of the gateway's VPC matched by any of `selections` (some of its selectors)."""
    if not selections:
        return ()
    out: dict[str, Pod] = {}
    for namespace in _candidate_namespaces(snap, selections):
        labels = snap.namespace_labels(namespace)
        chosen = [s.pod_selector for s in selections if s.namespace_selector.matches(labels)]
        if not chosen:
            continue
        for pod in _workload_pods(snap, namespace).get(resolved.vpc.name, ()):
            if any(sel.matches(pod.label_map) for sel in chosen):
                out[pod.key] = pod
    return tuple(out[k] for k in sorted(out))


def _candidate_namespaces(snap: Snapshot, selections: tuple[PodSelection, ...]) -> set[str]:
    """Namespaces with pods that some selection's namespaceSelector may match: by its
    matchLabels through a label index, every namespace for a selector without them."""
    index = snap.memo("namespaces-by-label", lambda: _namespaces_by_label(snap))
    out: set[str] = set()
    for selection in selections:
        wanted = selection.namespace_selector.match_labels
        if not wanted:
            return set(snap.pod_namespaces())
        found = set.intersection(*(index.get(kv, set()) for kv in wanted))
        out |= found
    return out


def _namespaces_by_label(snap: Snapshot) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for namespace in snap.pod_namespaces():
        for kv in snap.namespace_labels(namespace).items():
            out.setdefault(kv, set()).add(namespace)
    return out


def source_pods(resolved: ResolvedGateway, snap: Snapshot) -> tuple[Pod, ...]:
    """Pods of the VPC whose address lies in a source prefix, or that a selector chooses."""
    prefixes = {f: resolved.sources[f].all for f in resolved.sources}
    return source_pods_of(resolved, snap, prefixes, resolved.gateway.selectors)


def source_pods_of(resolved: ResolvedGateway, snap: Snapshot,
                   prefixes: Mapping[Family, tuple[IPNetwork, ...]],
                   selections: tuple[PodSelection, ...]) -> tuple[Pod, ...]:
    """Pods of the VPC inside one of `prefixes` or chosen by one of `selections` (some of the
    gateway's entries: those with the same destinations)."""
    chosen = {p.key: p for p in pods_selected_by(resolved, snap, selections)}
    for pod in _vpc_pods(resolved, snap):
        if any(ip in net for ip in pod.ips for net in prefixes.get(ip.version, ())):
            chosen[pod.key] = pod
    return tuple(chosen[k] for k in sorted(chosen))
