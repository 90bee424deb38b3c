"""The Deployment that runs a gateway's instances (docs/workload.md shows one rendered).

One pod per instance, each with its primary interface (`eth0`) on the internal subnet and a second
one (`net1`) from the external subnet's NetworkAttachmentDefinition; Kube-OVN's `ip_pool`
annotations pin the addresses when the spec lists them. The pod runs the in-pod agent twice:
`vegd gateway setup` in a privileged init container (sysctls need a writable `/proc/sys`), then
`vegd gateway run --keep-on-exit` with only the capabilities it needs. Both read the same
`VEGD_GATEWAY_*` environment.

Selected pods come and go all the time; the Deployment must not follow them, since every change
of the pod template replaces the instances. So for selectors the agent masquerades the CIDRs of
the VPC's subnets (the only places a selected pod can live); sources of `snat: false` policies
still win, because the agent puts their `return` rules first.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vegd.model.errors import ValidationError
from vegd.model.objects import (
    DEFAULT_VPC,
    FAMILIES,
    GATEWAY_LABEL,
    Family,
    IPNetwork,
    Snapshot,
    VpcEgressGateway,
    collapse,
    label_value,
)
from vegd.model.observability import Observability, observability_spec
from vegd.model.resolve import ResolvedGateway
from vegd.model.selectors import NodeSelectorTerm, Requirement
from vegd.workload.compare import contained

APP_LABEL = "app"
APP_VALUE = "vpc-egress-gateway"
MANAGED_BY = "app.kubernetes.io/managed-by"
SPEC_HASH = "vegd/spec-hash"  # of everything vegd renders except replicas

LOGICAL_SWITCH = "ovn.kubernetes.io/logical_switch"
IP_POOL = "ovn.kubernetes.io/ip_pool"
# Kube-OVN's CNI limits the pod's primary NIC (eth0, toward the VPC) by these. Its ingress is
# what the gateway sends out (VEG egress), so the directions cross, as in Kube-OVN.
INGRESS_RATE = "ovn.kubernetes.io/ingress_rate"
EGRESS_RATE = "ovn.kubernetes.io/egress_rate"
NETWORKS = "k8s.v1.cni.cncf.io/networks"

CONTAINER = "gateway"
INIT_CONTAINER = "setup"
STATE_VOLUME = "state"
STATE_DIR = "/run/vegd-gateway"
OBSERVABILITY_VOLUME = "observability"
OBSERVABILITY_DIR = "/etc/vegd-gateway/observability"
OBSERVABILITY_KEY = "config.json"
HEALTH_PORT_NAME = "health"
INTERNAL_INTERFACE = "eth0"
EXTERNAL_INTERFACE = "net1"  # Multus names the first attachment net1

BASE_CAPABILITIES = ("NET_ADMIN", "NET_RAW")
# FRR's bfdd: privs_init wants cap_net_bind_service, cap_net_raw and cap_sys_admin and exits
# without them; it drops to user frr (SETUID/SETGID) in a directory the agent chowns to frr
# (CHOWN, FOWNER), and the agent, as root, still writes there, talks to bfdd's socket
# (DAC_OVERRIDE) and stops a stale bfdd (KILL).
BFD_CAPABILITIES = ("NET_BIND_SERVICE", "SYS_ADMIN", "SETUID", "SETGID", "CHOWN", "FOWNER",
                    "DAC_OVERRIDE", "KILL")


def _default_resources() -> dict[str, dict[str, str]]:
    # The agent is ~35 MiB of Python plus bfdd. No CPU limit: CFS throttling would delay BFD
    # packets and flap sessions (Kube-OVN had to raise its bfdd CPU limit for that, #6788).
    return {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


@dataclass(frozen=True)
class WorkloadOptions:
    image: str = ""  # vegd's `gateway_image`; a gateway's spec.image wins
    vendor: str = "vegd"  # the Deployment's app.kubernetes.io/managed-by
    agent_port: int = 10669  # the agent's /livez /readyz /metrics
    image_pull_policy: str = ""  # empty: the API server's default
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=_default_resources)
    termination_grace_period: int = 10  # the agent stops bfdd and exits in well under a second
    # spec.bandwidth enforced by the agent (tc on its interfaces) too, for CNIs that ignore
    # Kube-OVN's rate annotations; the lower of two equal limits is the same limit
    agent_bandwidth: bool = True
    drain_seconds: int = 3  # preStop delay: vegd's reconcile + ovn-controller's flow update
    api_version: str = "kubeovn.io/v1"  # the gateways' group (the owner reference must name it)


def deployment_name(gw: VpcEgressGateway) -> str:
    return f"{gw.prefix}{gw.name}"


def workload_labels(name: str) -> dict[str, str]:
    """The labels of a gateway's Deployment and pods (also their selector)."""
    return {APP_LABEL: APP_VALUE, GATEWAY_LABEL: label_value(name)}


def label_selector(name: str) -> str:
    """`status.labelSelector` for the scale subresource: the pods' labels, keys sorted."""
    return ",".join(f"{k}={v}" for k, v in sorted(workload_labels(name).items()))


def _gateway_error(r: ResolvedGateway, field_path: str, message: str) -> ValidationError:
    return ValidationError(r.gateway.ref, field_path, message)


def agent_families(r: ResolvedGateway) -> tuple[Family, ...]:
    """Families the agent can route: the internal and the external subnet have a gateway."""
    return tuple(f for f in FAMILIES
                 if r.internal_subnet.gateway(f) is not None
                 and r.external_subnet.gateway(f) is not None)


def _inside_any(net: IPNetwork, others: tuple[IPNetwork, ...] | list[IPNetwork]) -> bool:
    return any(net.version == o.version and net.subnet_of(o) for o in others)  # type: ignore[arg-type]


def selector_subnets(r: ResolvedGateway, snap: Snapshot) -> list[IPNetwork]:
    """CIDRs where pods chosen by selectors can live: the VPC's pod subnets (provider ovn)."""
    if not r.gateway.selectors:
        return []
    return [cidr for s in snap.subnets_of(r.vpc.name)
            if s.provider == "ovn" and s.name != r.external_subnet.name for cidr in s.cidrs]


def agent_sources(r: ResolvedGateway, snap: Snapshot) -> tuple[list[IPNetwork], list[IPNetwork]]:
    """(SNAT sources, forward-only sources) for the agent, of the families it routes.

    A SNAT prefix inside a forward-only one is left out: the forward-only rule would win anyway,
    and the agent refuses a prefix listed twice.
    """
    families = agent_families(r)
    forward = list(collapse([n for f in families for n in r.sources[f].forward]))
    snat = [n for f in families for n in r.sources[f].snat]
    snat += [n for n in selector_subnets(r, snap) if n.version in families]
    return [n for n in collapse(snat) if not _inside_any(n, forward)], forward


def agent_env(r: ResolvedGateway, snap: Snapshot, options: WorkloadOptions) -> list[dict[str, str]]:
    """The `VEGD_GATEWAY_*` settings of the agent (docs/gateway.md), empty ones left out."""
    families = agent_families(r)
    if not families:
        raise _gateway_error(
            r, "spec.externalSubnet",
            f"internal subnet {r.internal_subnet.name} and external subnet "
            f"{r.external_subnet.name} have no address family in which both have a gateway")
    snat, forward = agent_sources(r, snap)
    values: list[tuple[str, str]] = [
        ("INTERNAL_INTERFACE", INTERNAL_INTERFACE),
        ("EXTERNAL_INTERFACE", EXTERNAL_INTERFACE),
    ]
    for family in families:
        values.append((f"INTERNAL_GATEWAY_IPV{family}", str(r.internal_subnet.gateway(family))))
        values.append((f"EXTERNAL_GATEWAY_IPV{family}", str(r.external_subnet.gateway(family))))
    values.append(("SNAT_SOURCES", ",".join(map(str, snat))))
    values.append(("FORWARD_SOURCES", ",".join(map(str, forward))))
    peers = [r.bfd_peers[f] for f in families if f in r.bfd_peers]
    if r.gateway.bfd.enabled and peers:
        bfd = r.gateway.bfd
        values += [("BFD_PEERS", ",".join(map(str, peers))),
                   # the timers NB gets: model.parse refused what FRR's bfdd cannot run
                   ("BFD_MIN_TX", str(bfd.min_tx)),
                   ("BFD_MIN_RX", str(bfd.min_rx)),
                   ("BFD_MULTIPLIER", str(bfd.multiplier))]
    gw = r.gateway
    if options.agent_bandwidth:
        values += [("BANDWIDTH_EGRESS", str(gw.bandwidth_egress or "")),
                   ("BANDWIDTH_INGRESS", str(gw.bandwidth_ingress or ""))]
    values += [("LISTEN", f":{options.agent_port}"), ("STATE_DIR", STATE_DIR),
               ("OBSERVABILITY_CONFIG", f"{OBSERVABILITY_DIR}/{OBSERVABILITY_KEY}")]
    return [{"name": f"VEGD_GATEWAY_{k}", "value": v} for k, v in values if v]


# The agent names itself in translation records and metrics (downward API, constant per pod).
IDENTITY_FIELDS = (("VEGD_GATEWAY_POD_NAME", "metadata.name"),
                   ("VEGD_GATEWAY_POD_NAMESPACE", "metadata.namespace"),
                   ("VEGD_GATEWAY_NODE_NAME", "spec.nodeName"))


def identity_env() -> list[dict[str, Any]]:
    """The pod's own name, namespace and node, from the downward API (a new list each time:
    cheaper than a deep copy of a shared one)."""
    return [{"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}
            for name, path in IDENTITY_FIELDS]


def observability_configmap_name(gw: VpcEgressGateway) -> str:
    """`<deployment>-observability`, shortened (with a hash) past a name's 253 characters."""
    name = f"{deployment_name(gw)}-observability"
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:230]}-{digest}-observability"


def build_observability_configmap(r: ResolvedGateway, options: WorkloadOptions
                                  ) -> dict[str, Any]:
    """The ConfigMap the agent reloads its observability settings from. It always exists and is
    always mounted, so switching observability on, off or changing it never rolls the pods."""
    gw = r.gateway
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": observability_configmap_name(gw), "namespace": gw.namespace,
            "labels": {**workload_labels(gw.name), MANAGED_BY: options.vendor},
            "ownerReferences": [{
                "apiVersion": options.api_version, "kind": "VpcEgressGateway", "name": gw.name,
                "uid": gw.uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "data": {OBSERVABILITY_KEY: _observability_document(gw.namespace, gw.name,
                                                            gw.observability)},
    }


@functools.lru_cache(maxsize=4096)
def _observability_document(namespace: str, name: str, observability: Observability) -> str:
    """The agent's settings file; memoised because every reconcile of a gateway renders it
    (json with indent is the pure-Python encoder) and it changes only with the spec."""
    config = {"version": 1, "namespace": namespace, "gateway": name,
              "observability": observability_spec(observability)}
    return json.dumps(config, sort_keys=True, indent=1)


def configmap_needs_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    meta = live.get("metadata") or {}
    return (live.get("data") or {}) != desired["data"] or contained(
        {k: desired["metadata"][k] for k in ("labels", "ownerReferences")}, meta) is not None


def _requirement(req: Requirement) -> dict[str, Any]:
    out: dict[str, Any] = {"key": req.key, "operator": req.operator}
    if req.values:
        out["values"] = list(req.values)
    return out


def _node_term(term: NodeSelectorTerm) -> dict[str, Any]:
    # Node affinity has no matchLabels: each label becomes an `In` expression (Kube-OVN's order).
    exprs = [_requirement(r) for r in term.labels.match_expressions]
    exprs += [{"key": k, "operator": "In", "values": [v]} for k, v in term.labels.match_labels]
    out: dict[str, Any] = {}
    if exprs:
        out["matchExpressions"] = exprs
    if term.match_fields:
        out["matchFields"] = [_requirement(r) for r in term.match_fields]
    return out


def _affinity(r: ResolvedGateway) -> dict[str, Any]:
    labels = workload_labels(r.gateway.name)
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}
    # Preferred lets replicas share a node (no node-level HA). Anti-affinity is a scheduling
    # rule: switching it rolls the pods, and only newly scheduled pods are placed by the new one.
    affinity: dict[str, Any] = {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [term]}
        if r.gateway.pod_anti_affinity == "Required" else {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}]}}
    # An empty term would match no node at all; leaving it out is what its author meant.
    terms = [t for t in (_node_term(t) for t in r.gateway.node_selector) if t]
    if terms:
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}
    return affinity


def _pod_annotations(r: ResolvedGateway, snap: Snapshot) -> dict[str, str]:
    gw = r.gateway
    external = r.external_subnet
    attachment = external.attachment
    if not attachment:
        raise _gateway_error(r, "spec.externalSubnet",
                             f"subnet {external.name} has provider {external.provider!r}, which "
                             "names no NetworkAttachmentDefinition (<name>.<namespace>)")
    if not snap.has_attachment(attachment):
        raise _gateway_error(r, "spec.externalSubnet",
                             f"NetworkAttachmentDefinition {attachment} of subnet "
                             f"{external.name} (provider {external.provider}) does not exist")
    out = {
        LOGICAL_SWITCH: r.internal_subnet.name,
        NETWORKS: attachment,
        # explicit, in case several subnets share the provider
        f"{external.provider}.kubernetes.io/logical_switch": external.name,
    }
    if gw.internal_ips:
        out[IP_POOL] = ";".join(",".join(map(str, entry)) for entry in gw.internal_ips)
    elif gw.internal_ip_pool:  # Kube-OVN's IPAM reads a lone non-address as an IPPool name
        out[IP_POOL] = gw.internal_ip_pool
    if gw.external_ips:
        out[f"{external.provider}.kubernetes.io/ip_pool"] = ";".join(
            ",".join(map(str, entry)) for entry in gw.external_ips)
    elif gw.external_ip_pool:
        out[f"{external.provider}.kubernetes.io/ip_pool"] = gw.external_ip_pool
    if gw.bandwidth_egress:
        out[INGRESS_RATE] = str(gw.bandwidth_egress)
    if gw.bandwidth_ingress:
        out[EGRESS_RATE] = str(gw.bandwidth_ingress)
    return out


def managed_pod_annotation(key: str) -> bool:
    """Pod template annotations vegd sets or removes; others (e.g. restartedAt) are kept."""
    return key in (LOGICAL_SWITCH, IP_POOL, NETWORKS, INGRESS_RATE, EGRESS_RATE) or key.endswith(
        (".kubernetes.io/ip_pool", ".kubernetes.io/logical_switch"))


def _probe(r: ResolvedGateway, path: str, options: WorkloadOptions, **timing: int
           ) -> dict[str, Any]:
    if r.vpc.name == DEFAULT_VPC:
        # The kubelet reaches pod IPs of the default VPC (through ovn0), not of custom VPCs.
        action: dict[str, Any] = {"httpGet": {"path": path, "port": HEALTH_PORT_NAME}}
    else:
        url = f"http://localhost:{options.agent_port}{path}"
        action = {"exec": {"command": [
            "python3", "-c", f"import urllib.request as u; u.urlopen({url!r}, timeout=4)"]}}
    return {**action, "timeoutSeconds": 5, **timing}


def _security(privileged: bool, capabilities: tuple[str, ...]) -> dict[str, Any]:
    if privileged:
        return {"privileged": True, "runAsUser": 0}
    out: dict[str, Any] = {"privileged": False, "runAsUser": 0, "runAsNonRoot": False,
                           "capabilities": {"drop": ["ALL"], "add": list(capabilities)}}
    if "SYS_ADMIN" not in capabilities:
        # Kubernetes treats CAP_SYS_ADMIN as allowing escalation; say so only without it.
        out["allowPrivilegeEscalation"] = False
    return out


def build_deployment(r: ResolvedGateway, snap: Snapshot, options: WorkloadOptions
                     ) -> dict[str, Any]:
    """The apps/v1 Deployment of a resolved gateway. Raises ValidationError when the workload
    cannot be built (no image, external subnet without an attachment, no common family)."""
    gw = r.gateway
    image = gw.image or options.image
    if not image:
        raise _gateway_error(r, "spec.image", "is empty and vegd has no gateway image "
                             "configured (gateway_image in [kubernetes] of vegd.conf)")
    labels = workload_labels(gw.name)
    env = agent_env(r, snap, options)
    bfd = any(e["name"] == "VEGD_GATEWAY_BFD_PEERS" for e in env)

    def container(name: str, *command: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": name, "image": image, "command": ["vegd", "gateway", *command],
            "env": [dict(e) for e in env],  # name/value strings: a flat copy is whole
            "volumeMounts": [{"name": STATE_VOLUME, "mountPath": STATE_DIR}],
            "resources": {k: dict(v) for k, v in options.resources.items()}}
        if options.image_pull_policy:
            out["imagePullPolicy"] = options.image_pull_policy
        return out

    setup = {**container(INIT_CONTAINER, "setup"), "securityContext": _security(True, ())}
    main = {
        **container(CONTAINER, "run", "--keep-on-exit"),
        # spec.resources replaces vegd's defaults of this container (as Kube-OVN's does)
        **({"resources": json.loads(gw.resources)} if gw.resources else {}),
        "ports": [{"name": HEALTH_PORT_NAME, "containerPort": options.agent_port,
                   "protocol": "TCP"}],
        "startupProbe": _probe(r, "/livez", options, periodSeconds=2, failureThreshold=30),
        "livenessProbe": _probe(r, "/livez", options, periodSeconds=10, failureThreshold=3),
        "readinessProbe": _probe(r, "/readyz", options, periodSeconds=5, failureThreshold=2),
        "securityContext": _security(False, BASE_CAPABILITIES + (BFD_CAPABILITIES if bfd else ())),
        # A terminating pod leaves NB (vegd sees its deletionTimestamp) before it stops
        # forwarding: connections hashed to it meanwhile still get through (scale-down is
        # hitless). The e2e lab lost 0-2 of 50 connections/s without this delay.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(options.drain_seconds)]}}},
    }
    main["env"] = main["env"] + identity_env()
    main["volumeMounts"] = main["volumeMounts"] + [
        {"name": OBSERVABILITY_VOLUME, "mountPath": OBSERVABILITY_DIR, "readOnly": True}]
    pod_spec: dict[str, Any] = {
        "affinity": _affinity(r),
        "initContainers": [setup],
        "containers": [main],
        "volumes": [{"name": STATE_VOLUME, "emptyDir": {}},
                    {"name": OBSERVABILITY_VOLUME, "configMap": {
                        "name": observability_configmap_name(gw), "optional": True}}],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": options.termination_grace_period,
        "automountServiceAccountToken": False,  # the agent never talks to the API server
        "enableServiceLinks": False,
    }
    if gw.tolerations:
        pod_spec["tolerations"] = [json.loads(t) for t in gw.tolerations]
    deployment: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(gw),
            "namespace": gw.namespace,
            "labels": {**labels, MANAGED_BY: options.vendor},
            "annotations": {},
            "ownerReferences": [{
                "apiVersion": options.api_version, "kind": "VpcEgressGateway", "name": gw.name,
                "uid": gw.uid, "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "replicas": gw.replicas,
            "selector": {"matchLabels": dict(labels)},
            # One at a time and never more pods than replicas: static IP lists have no spare.
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": dict(labels), "annotations": _pod_annotations(r, snap)},
                "spec": pod_spec,
            },
        },
    }
    deployment["metadata"]["annotations"][SPEC_HASH] = spec_hash(deployment)
    return deployment


def spec_hash(deployment: Mapping[str, Any]) -> str:
    """Hash of what vegd renders, replicas and the hash itself excepted (scaling is no change)."""
    body = dict(deployment)  # only top levels are replaced below: no deep copy needed
    body["spec"] = {k: v for k, v in body.get("spec", {}).items() if k != "replicas"}
    meta = dict(body.get("metadata", {}))
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                           if k != SPEC_HASH}
    body["metadata"] = meta
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def update_reason(live: Mapping[str, Any], desired: Mapping[str, Any]) -> str | None:
    """Why `live` must be updated to `desired` (a field path), or None when it need not be."""
    live_spec = live.get("spec") or {}
    if live_spec.get("replicas") != desired["spec"]["replicas"]:
        return ".spec.replicas"
    want = desired["metadata"]["annotations"][SPEC_HASH]
    if ((live.get("metadata") or {}).get("annotations") or {}).get(SPEC_HASH) != want:
        return f".metadata.annotations[{SPEC_HASH}]"  # vegd renders something else now
    # Someone edited what vegd set; server defaults and others' additions are fine.
    live_meta = live.get("metadata") or {}
    for part in ("labels", "annotations", "ownerReferences"):
        found = contained(desired["metadata"][part], live_meta.get(part), f".metadata.{part}")
        if found is not None:
            return found
    spec = {k: v for k, v in desired["spec"].items() if k != "template"}
    found = contained(spec, live_spec, ".spec")
    if found is not None:
        return found
    live_template = live_spec.get("template") or {}
    found = contained(desired["spec"]["template"], live_template, ".spec.template")
    if found is not None:
        return found
    extra = [k for k in (live_template.get("metadata", {}).get("annotations") or {})
             if managed_pod_annotation(k)
             and k not in desired["spec"]["template"]["metadata"]["annotations"]]
    return f".spec.template.metadata.annotations[{extra[0]}]" if extra else None


def owned_by(live: Mapping[str, Any], uid: str) -> bool:
    """Whether a Deployment belongs to the gateway with this uid (an owner reference names it).
    Another controller's Deployment of the same name is never updated (docs/decisions.md)."""
    refs = (live.get("metadata") or {}).get("ownerReferences") or []
    return not uid or any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


def needs_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    """True when a field vegd sets differs in the live Deployment (replicas included)."""
    return update_reason(live, desired) is not None


def merge_for_update(live: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The body to PUT: live metadata (resourceVersion included) with vegd's labels, annotations
    and owner references; vegd's spec. Others' pod template labels and annotations (e.g.
    `kubectl rollout restart`'s) are kept, so a scale-only update does not roll the pods."""
    out = copy.deepcopy(dict(desired))
    meta = copy.deepcopy(dict(live.get("metadata") or {}))
    meta["labels"] = {**(meta.get("labels") or {}), **desired["metadata"]["labels"]}
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           **desired["metadata"]["annotations"]}
    meta["ownerReferences"] = copy.deepcopy(desired["metadata"]["ownerReferences"])
    out["metadata"] = meta
    live_meta = (live.get("spec") or {}).get("template", {}).get("metadata") or {}
    tmeta = out["spec"]["template"]["metadata"]
    tmeta["labels"] = {**(live_meta.get("labels") or {}), **tmeta["labels"]}
    foreign = {k: v for k, v in (live_meta.get("annotations") or {}).items()
               if not managed_pod_annotation(k)}
    tmeta["annotations"] = {**foreign, **tmeta["annotations"]}
    out.pop("status", None)
    return out
