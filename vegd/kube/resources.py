"""The resources vegd watches, and where they live in the API."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

VEG_GROUP = "kubeovn.io"
VEG_VERSION = "v1"
VEG_PLURAL = "vpc-egress-gateways"


@dataclass(frozen=True)
class Resource:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    label_selector: str = ""  # watch only what vegd needs (Deployments it made)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def _group_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def collection_path(self) -> str:
        """Cluster-wide collection: every namespace for namespaced kinds."""
        return f"{self._group_path}/{self.plural}"

    def path(self, namespace: str = "", name: str = "", subresource: str = "") -> str:
        """A collection (in `namespace` for namespaced kinds), an object, or its subresource."""
        base = self._group_path
        if self.namespaced:
            base += f"/namespaces/{quote(namespace, safe='')}"
        path = f"{base}/{self.plural}"
        if name:
            path += f"/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


def gateways_in(group: str) -> Resource:
    """VpcEgressGateways in `group` (the same kind and schema in Kube-OVN's or vegd's group)."""
    return Resource("VpcEgressGateway", group, VEG_VERSION, VEG_PLURAL, True)


GATEWAYS = gateways_in(VEG_GROUP)  # the group vegd serves: serve_gateways_in
VPCS = Resource("Vpc", "kubeovn.io", "v1", "vpcs", False)
SUBNETS = Resource("Subnet", "kubeovn.io", "v1", "subnets", False)
PODS = Resource("Pod", "", "v1", "pods", True)
NAMESPACES = Resource("Namespace", "", "v1", "namespaces", False)
NODES = Resource("Node", "", "v1", "nodes", False)
DEPLOYMENTS = Resource("Deployment", "apps", "v1", "deployments", True,
                       label_selector="ovn.kubernetes.io/vpc-egress-gateway")
ATTACHMENTS = Resource("NetworkAttachmentDefinition", "k8s.cni.cncf.io", "v1",
                       "network-attachment-definitions", True)


def serve_gateways_in(group: str) -> None:
    """Watch and write VpcEgressGateways in `group` (`[kubernetes] api_group`: `kubeovn.io`, or
    vegd's own group beside Kube-OVN's controller, docs/decisions.md). Called once at start,
    before any informer exists; GATEWAYS keeps its identity, which other modules compare with
    `is`."""
    object.__setattr__(GATEWAYS, "group", group)


EVENTS = Resource("Event", "", "v1", "events", True)  # written, never watched
IP_POOLS = Resource("IPPool", "kubeovn.io", "v1", "ippools", False)
# the agents' observability settings, one per gateway (vegd's own, by label)
CONFIGMAPS = Resource("ConfigMap", "", "v1", "configmaps", True,
                      label_selector="ovn.kubernetes.io/vpc-egress-gateway")

WATCHED = (GATEWAYS, VPCS, SUBNETS, PODS, NAMESPACES, NODES, DEPLOYMENTS, ATTACHMENTS, IP_POOLS,
           CONFIGMAPS)


def object_key(obj: dict[str, object]) -> str:
    meta = obj.get("metadata") or {}
    assert isinstance(meta, dict)
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else str(name)
