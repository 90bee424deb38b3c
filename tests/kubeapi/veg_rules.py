"""Python stand-ins for the CEL rules (x-kubernetes-validations) of the VpcEgressGateway CRD.

The real API server evaluates the CEL expressions in deploy/crds/vpc-egress-gateway.yaml; this
test server and tests/unit/test_deploy_manifests.py evaluate these equivalents instead. Each
rule mirrors one CEL rule of the CRD and uses the same message; the manifest test checks that
every message here appears in the CRD, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

MSG_INTERNAL_IPS = "Size of Internal IPs MUST be equal to or greater than Replicas"
MSG_EXTERNAL_IPS = "Size of External IPs MUST be equal to or greater than Replicas"
MSG_POLICY_OR_SELECTOR = "Each VPC Egress Gateway MUST have at least one policy or selector"
MSG_POLICY_SOURCES = "Each policy MUST have at least one ipBlock or subnet"
MSG_NS_SELECTOR = "Each namespace selector MUST have at least one matchLabels or matchExpressions"
MSG_POD_SELECTOR = "Each pod selector MUST have at least one matchLabels or matchExpressions"
MSG_IMMUTABLE = "This field is immutable."
MSG_INTERNAL_POOL = "internalIPs and internalIPPool are mutually exclusive"
MSG_EXTERNAL_POOL = "externalIPs and externalIPPool are mutually exclusive"
MSG_BANDWIDTH = "bandwidth must be between 0 and 9223372036854 Mbps"
MSG_PORT_RANGE = "start must be less than or equal to end"

ALL_MESSAGES = (MSG_INTERNAL_IPS, MSG_EXTERNAL_IPS, MSG_POLICY_OR_SELECTOR, MSG_POLICY_SOURCES,
                MSG_NS_SELECTOR, MSG_POD_SELECTOR, MSG_IMMUTABLE, MSG_INTERNAL_POOL,
                MSG_EXTERNAL_POOL, MSG_BANDWIDTH, MSG_PORT_RANGE)


def _nonempty_selector(sel: dict[str, Any]) -> bool:
    return bool(sel.get("matchLabels")) or bool(sel.get("matchExpressions"))


def veg_cel_rules(new: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Violations of the CRD's CEL rules, as (field path, message). Assumes defaults applied."""
    spec = new.get("spec") or {}
    errors: list[tuple[str, str]] = []
    replicas = spec.get("replicas", 1)
    for field, msg in (("internalIPs", MSG_INTERNAL_IPS), ("externalIPs", MSG_EXTERNAL_IPS)):
        ips = spec.get(field) or []
        if ips and len(ips) < replicas:
            errors.append((f"spec.{field}", msg))
    if not spec.get("policies") and not spec.get("selectors"):
        errors.append(("spec", MSG_POLICY_OR_SELECTOR))
    for i, pol in enumerate(spec.get("policies") or []):
        if not pol.get("ipBlocks") and not pol.get("subnets"):
            errors.append((f"spec.policies[{i}]", MSG_POLICY_SOURCES))
    for i, sel in enumerate(spec.get("selectors") or []):
        if "namespaceSelector" in sel and not _nonempty_selector(sel["namespaceSelector"] or {}):
            errors.append((f"spec.selectors[{i}].namespaceSelector", MSG_NS_SELECTOR))
        if "podSelector" in sel and not _nonempty_selector(sel["podSelector"] or {}):
            errors.append((f"spec.selectors[{i}].podSelector", MSG_POD_SELECTOR))
    for side, msg in (("internal", MSG_INTERNAL_POOL), ("external", MSG_EXTERNAL_POOL)):
        if spec.get(f"{side}IPs") and spec.get(f"{side}IPPool"):
            errors.append((f"spec.{side}IPPool", msg))
    for direction in ("ingress", "egress"):
        rate = (spec.get("bandwidth") or {}).get(direction)
        if isinstance(rate, int) and not 0 <= rate <= 9223372036854:
            errors.append((f"spec.bandwidth.{direction}", MSG_BANDWIDTH))
    errors += _port_range_errors(spec)
    if old is not None:
        old_spec = old.get("spec") or {}
        if "prefix" in spec and "prefix" in old_spec and spec["prefix"] != old_spec["prefix"]:
            errors.append(("spec.prefix", MSG_IMMUTABLE))
    return errors


def _port_range_errors(spec: dict[str, Any]) -> list[tuple[str, str]]:
    log = ((spec.get("observability") or {}).get("conntrack") or {}).get("log") or {}
    errors = []
    for kind, rules in ((log.get("filters") or {}).items()):
        for i, rule in enumerate(rules or []):
            for side in ("original", "translated"):
                for key in ("sourcePorts", "destinationPorts"):
                    for j, r in enumerate((rule.get(side) or {}).get(key) or []):
                        if r.get("start", 0) > r.get("end", 0):
                            errors.append((f"spec.observability.conntrack.log.filters.{kind}[{i}]"
                                           f".{side}.{key}[{j}]", MSG_PORT_RANGE))
    return errors


VEG_RULES = [veg_cel_rules]
