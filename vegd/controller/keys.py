"""Which reconcile keys an object change concerns.

Keys are `veg:<namespace>/<name>` and `vpc:<name>`. The mapping errs on the side of enqueuing:
a spurious reconcile costs a diff against the replica and no transaction, a missed one leaves NB
wrong until the next resync. Callers drop changes whose parsed objects are equal (status-only
updates, our own writes) before asking.
"""

from __future__ import annotations

from typing import Any

from vegd.model.instances import pod_subnet
from vegd.model.objects import (
    GATEWAY_LABEL,
    IPPool,
    Namespace,
    NetworkAttachmentDefinition,
    Node,
    Pod,
    Snapshot,
    Subnet,
    Vpc,
    VpcEgressGateway,
)


def gateway_key(key: str) -> str:
    return f"veg:{key}"


def vpc_key(name: str) -> str:
    return f"vpc:{name}"


def keys_for(old: Any, new: Any, snap: Snapshot) -> set[str]:
    keys: set[str] = set()
    for obj in (old, new):
        if obj is not None:
            keys |= _keys_for_one(obj, snap)
    return keys


def _gateways(snap: Snapshot, vpcs: set[str]) -> set[str]:
    """Every gateway of these VPCs."""
    by_vpc = _by_vpc(snap)
    return {gateway_key(g.key) for vpc in vpcs for g in by_vpc.get(vpc, ())}


def _by_vpc(snap: Snapshot) -> dict[str, list[VpcEgressGateway]]:
    def group() -> dict[str, list[VpcEgressGateway]]:
        out: dict[str, list[VpcEgressGateway]] = {}
        for gw in snap.gateways:
            out.setdefault(gw.vpc, []).append(gw)
        return out
    return snap.memo("gateways_by_vpc", group)


PodCandidates = tuple[tuple[VpcEgressGateway, ...],
                      dict[tuple[str, str], tuple[VpcEgressGateway, ...]]]


def _pod_candidates(snap: Snapshot) -> dict[str, PodCandidates]:
    """Per VPC, the gateways a pod event may concern: those that must always be asked (Local
    ones, and selectors whose namespaceSelector has no matchLabels), and the others by one
    matchLabels pair of each selector's namespaceSelector, which the pod's namespace must carry.
    A pod event then checks a few gateways instead of every gateway of its VPC. Reads no pod:
    inherited across pod events (Snapshot.POD_FREE_MEMOS)."""
    def build() -> dict[str, PodCandidates]:
        out: dict[str, PodCandidates] = {}
        for vpc, gateways in _by_vpc(snap).items():
            always: list[VpcEgressGateway] = []
            by_label: dict[tuple[str, str], list[VpcEgressGateway]] = {}
            for gw in gateways:
                wanted = [s.namespace_selector.match_labels[:1] for s in gw.selectors]
                if gw.traffic_policy == "Local" or any(not kv for kv in wanted):
                    always.append(gw)
                    continue
                for kv in {kv[0] for kv in wanted}:
                    by_label.setdefault(kv, []).append(gw)
            out[vpc] = (tuple(always), {kv: tuple(g) for kv, g in by_label.items()})
        return out
    return snap.memo("gateways_by_namespace_selector", build)


def _keys_for_one(obj: Any, snap: Snapshot) -> set[str]:
    if isinstance(obj, VpcEgressGateway):
        return {gateway_key(obj.key)}
    if isinstance(obj, Pod):
        owner = dict(obj.labels).get(GATEWAY_LABEL)
        if owner:
            gw = snap.gateway_by_label(obj.namespace, owner)
            return {gateway_key(gw.key)} if gw is not None else set()
        subnet = pod_subnet(obj, snap)
        if subnet is None:
            return set()
        # Only gateways whose rows can depend on this pod: selectors that match it (old and new
        # states are both asked, so a pod leaving a selector is seen) and Local gateways (their
        # per-node sets hold the source pods). CIDR sources do not depend on pods.
        ns_labels = snap.namespace_labels(obj.namespace)
        pod_labels = obj.label_map
        always, by_label = _pod_candidates(snap).get(subnet.vpc, ((), {}))
        candidates = {g.key: g for g in always}
        for kv in ns_labels.items():
            candidates.update((g.key, g) for g in by_label.get(kv, ()))
        return {gateway_key(g.key) for g in candidates.values() if (
            g.traffic_policy == "Local"
            or any(s.namespace_selector.matches(ns_labels) and s.pod_selector.matches(pod_labels)
                   for s in g.selectors))}
    if isinstance(obj, Namespace):
        # selectors of any VPC may match the namespace; pods of it may be sources anywhere
        return {gateway_key(g.key) for g in snap.gateways if g.selectors}
    if isinstance(obj, Subnet):
        keys = (_gateways(snap, {obj.vpc}) | {vpc_key(obj.vpc)}) if obj.vpc else set()
        for gw in snap.gateways:
            names = {gw.external_subnet, gw.internal_subnet}
            names.update(s for p in gw.policies for s in p.subnets)
            if obj.name in names:
                keys.add(gateway_key(gw.key))
        return keys
    if isinstance(obj, Vpc):
        return {vpc_key(obj.name)} | _gateways(snap, {obj.name})
    if isinstance(obj, Node):
        keys = {vpc_key(v.name) for v in snap.all_vpcs() if v.bfd_port.enabled}
        keys |= {gateway_key(g.key) for g in snap.gateways if g.traffic_policy == "Local"}
        return keys
    if isinstance(obj, IPPool):
        # Kube-OVN does not re-check its gateways when a pool changes (#7292); vegd does
        return {gateway_key(g.key) for g in snap.gateways
                if obj.name in (g.internal_ip_pool, g.external_ip_pool)}
    if isinstance(obj, NetworkAttachmentDefinition):
        return {gateway_key(g.key) for g in snap.gateways}
    return set()


def keys_for_vpc_gateways(old: Any, new: Any, snap: Snapshot) -> set[str]:
    """Every gateway of the VPCs a gateway was or is in: which of two gateways with overlapping
    sources is valid depends on both, so a change of one re-checks the others."""
    vpcs = {g.vpc for g in (old, new) if isinstance(g, VpcEgressGateway)}
    return _gateways(snap, vpcs)


def deployment_keys(raw: dict[str, Any] | None, snap: Snapshot) -> set[str]:
    """The gateway of a Deployment: its owner reference (names up to 253 characters), else
    its label (which long names only carry shortened)."""
    if not raw:
        return set()
    meta = raw.get("metadata") or {}
    ns = str(meta.get("namespace") or "default")
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "VpcEgressGateway" and ref.get("name"):
            return {gateway_key(f"{ns}/{ref['name']}")}
    owner = (meta.get("labels") or {}).get(GATEWAY_LABEL)
    gw = snap.gateway_by_label(ns, owner) if owner else None
    return {gateway_key(gw.key)} if gw is not None else set()
