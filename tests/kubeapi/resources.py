"""Resource types the test API server serves, and their discovery documents.

Built-in types are declared here by hand (Kube-OVN's Vpc/Subnet and Multus's NAD too: vegd does
not ship their CRDs). Custom resources are registered from a real ``CustomResourceDefinition``:
creating one (``apiextensions.k8s.io/v1``, through the API or ``Registry.add_crd``) builds the
``ResourceType`` from it (``ResourceType.from_crd``): its openAPIV3Schema (pruning, defaulting,
validation, see ``schema.py``; CEL rules, see ``cel.py``), subresources, short names,
categories and printer columns. The test fixture installs ``deploy/crds/`` at start, the way a
cluster has the CRD installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VEG_CRD = REPO / "deploy" / "crds" / "vpc-egress-gateway.yaml"

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
    schema: dict[str, Any] | None = None  # openAPIV3Schema of a CRD (with its CEL rules)
    printer_columns: list[dict[str, Any]] | None = None  # a CRD's additionalPrinterColumns
    categories: tuple[str, ...] = ()

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
    def from_crd(cls, crd: dict[str, Any], version: dict[str, Any]) -> ResourceType:
        """The resource one served version of a CustomResourceDefinition defines."""
        spec = crd["spec"]
        names = spec["names"]
        subs = version.get("subresources") or {}
        scale = None
        if "scale" in subs:
            s = subs["scale"]
            scale = ScaleSpec(s["specReplicasPath"], s["statusReplicasPath"],
                              s.get("labelSelectorPath"))
        return cls(
            group=spec["group"], version=version["name"], plural=names["plural"],
            kind=names["kind"], namespaced=spec["scope"] == "Namespaced",
            singular=names.get("singular") or names["kind"].lower(),
            short_names=tuple(names.get("shortNames") or ()), status="status" in subs,
            scale=scale, generation=True, custom=True,
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
            printer_columns=list(version.get("additionalPrinterColumns") or []) or None,
            categories=tuple(names.get("categories") or ()),
        )


CRD_GROUP = "apiextensions.k8s.io"
CRD_KEY = (CRD_GROUP, "customresourcedefinitions")


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
        ResourceType(CRD_GROUP, "v1", "customresourcedefinitions", "CustomResourceDefinition",
                     False, "customresourcedefinition", ("crd", "crds"), status=True,
                     generation=True),
    ]


class Registry:
    def __init__(self, types: Iterable[ResourceType] = ()) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for t in types:
            self.add(t)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def add_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        """Serve the resources a CRD defines (one per served version), replacing earlier ones
        of the same CRD; the stored objects stay (they are kept per group and plural)."""
        self.remove_crd(crd)
        out = [ResourceType.from_crd(crd, v) for v in crd["spec"]["versions"] if v.get("served")]
        for rt in out:
            self.add(rt)
        return out

    def remove_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        gone = [k for k, t in self._types.items() if t.custom and t.key == key]
        return [self._types.pop(k) for k in gone]

    def by_resource(self, group: str, plural: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.key == (group, plural)]

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
                              **({"shortNames": list(t.short_names)} if t.short_names else {}),
                              **({"categories": list(t.categories)} if t.categories else {})})
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


def default_registry() -> Registry:
    """The built-in types; custom resources come from CRDs created in the server."""
    return Registry(builtin_types())
