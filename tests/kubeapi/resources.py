"""Resource types the test API server serves, and their discovery documents.

Built-in types are declared here by hand; custom resources can also be registered from a real
``CustomResourceDefinition`` document (``ResourceType.from_crd``), which brings the CRD's
openAPIV3Schema (defaulting, pruning and validation, see ``schema.py``), its subresources and its
short names. ``default_registry()`` registers the VpcEgressGateway CRD from ``deploy/crds/`` when
that file exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VEG_CRD = REPO / "deploy" / "crds" / "vpc-egress-gateway.yaml"

# A rule gets (new, old-or-None) and returns a list of (field path, message) violations.
Rule = Callable[[dict[str, Any], dict[str, Any] | None], list[tuple[str, str]]]

_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass
class ScaleSpec:
    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    status: bool = False  # has a status subresource
    scale: ScaleSpec | None = None
    generation: bool = False  # metadata.generation is maintained
    custom: bool = False  # a custom resource (no strategic merge patch, items carry kind)
    return_deleted_object: bool = False  # DELETE answers with the object instead of a Status
    fields: frozenset[str] = _META_FIELDS  # supported field selector paths
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a CRD
    rules: list[Rule] = field(default_factory=list)  # stand-ins for CEL x-kubernetes-validations

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """Group-qualified resource name for messages (``pods``, ``deployments.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @classmethod
    def from_crd(cls, crd: dict[str, Any], rules: Iterable[Rule] = ()) -> ResourceType:
        spec = crd["spec"]
        names = spec["names"]
        version = next((v for v in spec["versions"] if v.get("storage")), spec["versions"][0])
        subs = version.get("subresources") or {}
        scale = None
        if "scale" in subs:
            s = subs["scale"]
            scale = ScaleSpec(s["specReplicasPath"], s["statusReplicasPath"],
                              s.get("labelSelectorPath"))
        return cls(
            group=spec["group"], version=version["name"], plural=names["plural"],
            kind=names["kind"], namespaced=spec["scope"] == "Namespaced",
            singular=names.get("singular", names["kind"].lower()),
            short_names=tuple(names.get("shortNames") or ()), status="status" in subs,
            scale=scale, generation=True, custom=True,
            schema=(version.get("schema") or {}).get("openAPIV3Schema"), rules=list(rules),
        )


def _pod_fields() -> frozenset[str]:
    return _META_FIELDS | {
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    }


def _event_fields() -> frozenset[str]:
    return _META_FIELDS | {
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    }


def builtin_types() -> list[ResourceType]:
    return [
        ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",), status=True,
                     return_deleted_object=True, fields=_pod_fields()),
        ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
                     status=True, return_deleted_object=True,
                     fields=_META_FIELDS | {"status.phase"}),
        ResourceType("", "v1", "nodes", "Node", False, "node", ("no",), status=True,
                     fields=_META_FIELDS | {"spec.unschedulable"}),
        ResourceType("", "v1", "events", "Event", True, "event", ("ev",), fields=_event_fields()),
        ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)),
        ResourceType("apps", "v1", "deployments", "Deployment", True, "deployment", ("deploy",),
                     status=True, scale=ScaleSpec(label_selector_path=".spec.selector"),
                     generation=True),
        ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True, "lease"),
        ResourceType("events.k8s.io", "v1", "events", "Event", True, "event", ("ev",),
                     fields=_META_FIELDS | {"reason", "type", "regarding.kind",
                                            "regarding.namespace", "regarding.name",
                                            "regarding.uid", "reportingController"}),
        ResourceType("k8s.cni.cncf.io", "v1", "network-attachment-definitions",
                     "NetworkAttachmentDefinition", True, "network-attachment-definition",
                     ("net-attach-def",), generation=True, custom=True),
        ResourceType("kubeovn.io", "v1", "vpcs", "Vpc", False, "vpc", ("vpc",), status=True,
                     generation=True, custom=True),
        ResourceType("kubeovn.io", "v1", "subnets", "Subnet", False, "subnet", ("subnet",),
                     status=True, generation=True, custom=True),
        ResourceType("kubeovn.io", "v1", "ippools", "IPPool", False, "ippool", ("ippool",),
                     status=True, generation=True, custom=True),
    ]


def veg_fallback() -> ResourceType:
    """The VpcEgressGateway type without a schema, for when the CRD file is absent."""
    return ResourceType("kubeovn.io", "v1", "vpc-egress-gateways", "VpcEgressGateway", True,
                        "vpc-egress-gateway", ("vpc-egress-gw", "veg"), status=True,
                        scale=ScaleSpec(".spec.replicas", ".status.replicas",
                                        ".status.labelSelector"),
                        generation=True, custom=True)


class Registry:
    def __init__(self, types: Iterable[ResourceType] = ()) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for t in types:
            self.add(t)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def add_crd(self, crd: dict[str, Any], rules: Iterable[Rule] = ()) -> ResourceType:
        rt = ResourceType.from_crd(crd, rules)
        self.add(rt)
        return rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self._types.values():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    # ------------------------------------------------------------ discovery documents

    def groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for g, v, _ in self._types:
            if g and v not in out.setdefault(g, []):
                out[g].append(v)
        return out

    def api_versions(self) -> dict[str, Any]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                "serverAddress": "127.0.0.1"}]}

    def _group_doc(self, group: str, versions: list[str]) -> dict[str, Any]:
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": vs, "preferredVersion": vs[0]}

    def api_group_list(self) -> dict[str, Any]:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self._group_doc(g, vs) for g, vs in sorted(self.groups().items())]}

    def api_group(self, group: str) -> dict[str, Any] | None:
        vs = self.groups().get(group)
        if not vs:
            return None
        return {"kind": "APIGroup", "apiVersion": "v1", **self._group_doc(group, vs)}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [t for (g, v, _), t in self._types.items() if g == group and v == version]
        if not types:
            return None
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                 "watch"]
        resources: list[dict[str, Any]] = []
        for t in types:
            resources.append({"name": t.plural, "singularName": t.singular, "namespaced":
                              t.namespaced, "kind": t.kind, "verbs": verbs,
                              **({"shortNames": list(t.short_names)} if t.short_names else {})})
            if t.status:
                resources.append({"name": f"{t.plural}/status", "singularName": "",
                                  "namespaced": t.namespaced, "kind": t.kind,
                                  "verbs": ["get", "patch", "update"]})
            if t.scale:
                resources.append({"name": f"{t.plural}/scale", "singularName": "",
                                  "namespaced": t.namespaced, "group": "autoscaling",
                                  "version": "v1", "kind": "Scale",
                                  "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources}


def default_registry(veg_crd: Path | None = VEG_CRD) -> Registry:
    from .veg_rules import VEG_RULES

    reg = Registry(builtin_types())
    if veg_crd is not None and veg_crd.exists():
        reg.add_crd(yaml.safe_load(veg_crd.read_text()), VEG_RULES)
    else:
        reg.add(veg_fallback())
    return reg
