"""Typed, validated views of the Kubernetes objects vegd reads. Built by `model.parse`."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeVar

from vegd.model.destinations import Destinations
from vegd.model.observability import Observability
from vegd.model.selectors import LabelSelector, NodeSelectorTerm

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Family = Literal[4, 6]
FAMILIES: tuple[Family, Family] = (4, 6)
T = TypeVar("T")

DEFAULT_VPC = "ovn-cluster"
GATEWAY_LABEL = "ovn.kubernetes.io/vpc-egress-gateway"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # every namespace has it (Kubernetes >= 1.21)
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


@dataclass(frozen=True)
class Bfd:
    enabled: bool = False
    min_rx: int = 1000
    min_tx: int = 1000
    multiplier: int = 3


@dataclass(frozen=True)
class EgressPolicy:
    snat: bool = False
    ip_blocks: tuple[IPNetwork, ...] = ()
    subnets: tuple[str, ...] = ()
    destinations: Destinations = Destinations()  # which destinations go through the gateway


@dataclass(frozen=True)
class PodSelection:
    """One entry of spec.selectors: pods matching both selectors (empty = all)."""

    namespace_selector: LabelSelector = LabelSelector()
    pod_selector: LabelSelector = LabelSelector()
    destinations: Destinations = Destinations()


def label_value(name: str) -> str:
    """The value of a gateway's pod label: names over 63 characters (a label value's limit) are
    shortened as Kube-OVN does."""
    if len(name) <= 63:
        return name
    return f"{name[:54]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class VpcEgressGateway:
    namespace: str
    name: str
    external_subnet: str
    vpc: str = DEFAULT_VPC
    replicas: int = 1
    prefix: str = ""
    image: str = ""
    internal_subnet: str = ""  # empty: the VPC's default subnet
    # each entry is one instance's addresses: "10.16.0.12" or "10.16.0.12,fd00::c"
    internal_ips: tuple[tuple[IPAddress, ...], ...] = ()
    external_ips: tuple[tuple[IPAddress, ...], ...] = ()
    bfd: Bfd = Bfd()
    bfd_mode: Literal["route", "policy"] = "route"
    policies: tuple[EgressPolicy, ...] = ()
    selectors: tuple[PodSelection, ...] = ()
    node_selector: tuple[NodeSelectorTerm, ...] = ()
    traffic_policy: Literal["Cluster", "Local"] = "Cluster"
    tolerations: tuple[str, ...] = ()  # JSON of each toleration, passed through to the workload
    resources: str = ""  # JSON of spec.resources (replaces the gateway container's defaults)
    bandwidth_ingress: int = 0  # Mbps per instance, toward the VPC; 0: unlimited
    bandwidth_egress: int = 0  # Mbps per instance, toward the external network; 0: unlimited
    pod_anti_affinity: Literal["Required", "Preferred"] = "Required"
    internal_ip_pool: str = ""  # name of a Kube-OVN IPPool
    external_ip_pool: str = ""
    observability: Observability = Observability()
    uid: str = ""
    generation: int = 0
    created: str = ""  # metadata.creationTimestamp (RFC 3339 sorts as text)
    deleting: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ref(self) -> str:
        return f"VpcEgressGateway {self.key}"

    @property
    def pod_label(self) -> str:
        """The value of GATEWAY_LABEL on its Deployment and pods."""
        return label_value(self.name)


@dataclass(frozen=True)
class BfdPort:
    enabled: bool = False
    ips: tuple[IPAddress, ...] = ()
    node_selector: LabelSelector | None = None


@dataclass(frozen=True)
class Vpc:
    name: str
    router: str = ""  # logical router name; Kube-OVN names it after the VPC
    default_subnet: str = ""
    bfd_port: BfdPort = BfdPort()
    implicit: bool = False  # the default VPC, assumed when no manifest declares it

    @property
    def router_name(self) -> str:
        return self.router or self.name


@dataclass(frozen=True)
class Subnet:
    name: str
    vpc: str = DEFAULT_VPC
    cidrs: tuple[IPNetwork, ...] = ()
    gateways: tuple[IPAddress, ...] = ()
    provider: str = "ovn"
    default: bool = False

    def cidr(self, family: Family) -> IPNetwork | None:
        return next((c for c in self.cidrs if c.version == family), None)

    def gateway(self, family: Family) -> IPAddress | None:
        return next((g for g in self.gateways if g.version == family), None)

    @functools.cached_property
    def families(self) -> tuple[Family, ...]:
        """(Frozen: worked out once; every reconcile of the subnet's gateways asks.)"""
        return tuple(f for f in (4, 6) if self.cidr(f) is not None)

    @property
    def on_router(self) -> bool:
        """A Kube-OVN subnet on the VPC's logical router (a logical switch with a router port):
        provider `ovn` or `<nad>.<ns>.ovn`. Others (macvlan, underlay attachments) are not."""
        return self.provider == "ovn" or self.provider.endswith(".ovn")

    @property
    def attachment(self) -> str:
        """`<ns>/<name>` of the NetworkAttachmentDefinition a provider `<name>.<ns>[.x]` names."""
        parts = self.provider.split(".")
        return f"{parts[1]}/{parts[0]}" if len(parts) >= 2 else ""


@dataclass(frozen=True)
class AttachedNetwork:
    """One entry of the Multus network-status annotation."""

    name: str
    interface: str = ""
    ips: tuple[IPAddress, ...] = ()


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    ips: tuple[IPAddress, ...] = ()
    node_name: str = ""
    phase: str = ""
    ready: bool = False
    host_network: bool = False
    deleting: bool = False
    logical_switch: str = ""  # ovn.kubernetes.io/logical_switch, when the pod says
    networks: tuple[AttachedNetwork, ...] = ()
    has_network_status: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @functools.cached_property
    def label_map(self) -> dict[str, str]:
        """The labels as a mapping, made once (selectors ask for it on hot paths); read only."""
        return dict(self.labels)

    def ip(self, family: Family) -> IPAddress | None:
        return next((ip for ip in self.ips if ip.version == family), None)


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    chassis: str = ""  # ovn.kubernetes.io/chassis annotation, when present
    ready: bool = True


@dataclass(frozen=True)
class IPPool:
    """A Kube-OVN IPPool (kubeovn.io/v1, cluster-scoped): addresses of one subnet."""

    name: str
    subnet: str = ""
    # spec.ips as inclusive (first, last) ranges: an address, a CIDR or `a..b`
    ranges: tuple[tuple[IPAddress, IPAddress], ...] = ()
    available: tuple[tuple[int, int], ...] = ()  # (family, status.v4/v6AvailableIPs) reported

    def contains(self, ip: IPAddress) -> bool:
        return any(first.version == ip.version and first <= ip <= last  # type: ignore[operator]
                   for first, last in self.ranges)

    def free(self, family: int) -> int | None:
        """Free addresses of a family as Kube-OVN's status reports them (None: not reported)."""
        return dict(self.available).get(family)


@dataclass(frozen=True)
class NetworkAttachmentDefinition:
    namespace: str
    name: str


@dataclass(frozen=True)
class Snapshot:
    """Everything a reconcile reads, frozen for its duration."""

    gateways: tuple[VpcEgressGateway, ...] = ()
    vpcs: tuple[Vpc, ...] = ()
    subnets: tuple[Subnet, ...] = ()
    pods: tuple[Pod, ...] = ()  # empty where pods_by_namespace is given: read all_pods()
    namespaces: tuple[Namespace, ...] = ()
    nodes: tuple[Node, ...] = ()
    attachments: tuple[NetworkAttachmentDefinition, ...] = ()
    ip_pools: tuple[IPPool, ...] = ()
    chassis_by_hostname: tuple[tuple[str, str], ...] = ()  # from the SB Chassis table
    # every pod by namespace, when the source keeps them so (the informer cache does, so a
    # snapshot after one pod event costs that namespace, not a tuple of every pod); None:
    # grouped here from `pods`
    pods_by_namespace: Mapping[str, tuple[Pod, ...]] | None = field(
        default=None, compare=False, repr=False)
    # memos of this snapshot; init=False so dataclasses.replace() starts a new snapshot empty
    _index: dict[str, object] = field(default_factory=dict, init=False, compare=False, repr=False)

    # memos that read no pod: a snapshot that differs from its predecessor only in pods may
    # take them over (the informer cache does, after every pod event)
    POD_FREE_MEMOS: ClassVar[frozenset[str]] = frozenset({
        "gateway", "vpc", "subnet", "node", "namespace", "ip_pool", "gateway_by_label",
        "gateways_by_vpc", "source-claims", "address-claims", "namespaces-by-label",
        "gateways_by_namespace_selector"})

    def inherit(self, previous: Snapshot) -> None:
        """Take over the pod-free memos of a snapshot equal to this one but for its pods."""
        for name in self.POD_FREE_MEMOS & previous._index.keys():
            self._index.setdefault(name, previous._index[name])

    def memo(self, name: str, build: Callable[[], T]) -> T:
        """A value derived from this (frozen) snapshot, computed once."""
        if name not in self._index:
            self._index[name] = build()
        return self._index[name]  # type: ignore[return-value]

    def _lookup(self, name: str, items: tuple[object, ...], key: str) -> dict[str, object]:
        if name not in self._index:
            self._index[name] = {getattr(i, key): i for i in items}
        return self._index[name]  # type: ignore[return-value]

    def all_pods(self) -> Iterable[Pod]:
        """Every pod, however the source gave them."""
        if self.pods_by_namespace is None:
            return self.pods
        return itertools.chain.from_iterable(self.pods_by_namespace.values())

    def pods_in(self, namespace: str) -> tuple[Pod, ...]:
        return self._pods_by_namespace().get(namespace, ())

    def pod_namespaces(self) -> Iterable[str]:
        """Every namespace that has pods."""
        return self._pods_by_namespace().keys()

    def _pods_by_namespace(self) -> Mapping[str, tuple[Pod, ...]]:
        if self.pods_by_namespace is not None:
            return self.pods_by_namespace

        def group() -> dict[str, tuple[Pod, ...]]:
            out: dict[str, list[Pod]] = {}
            for pod in self.pods:
                out.setdefault(pod.namespace, []).append(pod)
            return {ns: tuple(pods) for ns, pods in out.items()}
        return self.memo("pods_by_namespace", group)

    def vpc(self, name: str) -> Vpc | None:
        found = self._lookup("vpc", self.vpcs, "name").get(name)
        if found is None and name == DEFAULT_VPC:
            return Vpc(DEFAULT_VPC, implicit=True)
        return found  # type: ignore[return-value]

    def subnet(self, name: str) -> Subnet | None:
        return self._lookup("subnet", self.subnets, "name").get(name)  # type: ignore[return-value]

    def ip_pool(self, name: str) -> IPPool | None:
        return self._lookup("ip_pool", self.ip_pools, "name").get(name)  # type: ignore[return-value]

    def node(self, name: str) -> Node | None:
        return self._lookup("node", self.nodes, "name").get(name)  # type: ignore[return-value]

    def gateway(self, key: str) -> VpcEgressGateway | None:
        return self._lookup("gateway", self.gateways, "key").get(key)  # type: ignore[return-value]

    def gateway_by_label(self, namespace: str, value: str) -> VpcEgressGateway | None:
        """The gateway whose pods carry GATEWAY_LABEL=value in namespace."""
        by_label = self.memo("gateway_by_label", lambda: {
            (g.namespace, g.pod_label): g for g in self.gateways})
        return by_label.get((namespace, value))

    def namespace_labels(self, name: str) -> dict[str, str]:
        ns = self._lookup("namespace", self.namespaces, "name").get(name)
        # a namespace always carries its own name label (Kubernetes >= 1.21)
        labels = dict(ns.labels) if isinstance(ns, Namespace) else {}
        labels.setdefault(NAMESPACE_NAME_LABEL, name)
        return labels

    def has_attachment(self, ref: str) -> bool:
        return ref in {f"{a.namespace}/{a.name}" for a in self.attachments}

    def subnets_of(self, vpc: str) -> tuple[Subnet, ...]:
        return tuple(s for s in self.subnets if s.vpc == vpc)

    def chassis_of(self, node: Node) -> str:
        return node.chassis or dict(self.chassis_by_hostname).get(node.name, "")

    def all_vpcs(self) -> tuple[Vpc, ...]:
        names = {v.name for v in self.vpcs}
        implicit = () if DEFAULT_VPC in names else (Vpc(DEFAULT_VPC, implicit=True),)
        return self.vpcs + implicit


def collapse(nets: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    """Prefixes sorted by family and address, without duplicates and without any prefix that
    lies inside another one of the list."""
    out: list[IPNetwork] = []
    for net in sorted(set(nets), key=lambda n: (n.version, n.prefixlen, int(n.network_address))):
        if not any(net.version == o.version and net.subnet_of(o) for o in out):  # type: ignore[arg-type]
            out.append(net)
    return tuple(sorted(out, key=lambda n: (n.version, int(n.network_address), n.prefixlen)))

