"""Kubernetes objects (plain dicts, as YAML or the API give them) into `model.objects`.

Field-level validation happens here: types, ranges, enums, address syntax. Checks that need other
objects (does the subnet exist, is the IP inside it) live in `model.resolve`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from vegd.model.errors import ValidationError
from vegd.model.objects import (
    DEFAULT_VPC,
    NETWORK_STATUS,
    AttachedNetwork,
    Bfd,
    BfdPort,
    EgressPolicy,
    IPAddress,
    IPNetwork,
    IPPool,
    Namespace,
    NetworkAttachmentDefinition,
    Node,
    Pod,
    PodSelection,
    Subnet,
    Vpc,
    VpcEgressGateway,
)
from vegd.model.observability import parse_observability
from vegd.model.quantities import bandwidth_mbps, parse_resources
from vegd.model.selectors import parse_label_selector, parse_node_selector_term

_PREFIX = re.compile(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*[-.]?$")
_BFD_RANGE = (1, 3_600_000)
MAX_REPLICAS = 10


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def parse_ip(text: Any, obj: str, field: str) -> IPAddress:
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise ValidationError(obj, field, f"{text!r} is not an IP address") from None


def parse_cidr(text: Any, obj: str, field: str) -> IPNetwork:
    """A CIDR or a bare address (a /32 or /128). Host bits are cleared, as OVN would."""
    try:
        return ipaddress.ip_network(str(text).strip(), strict=False)
    except ValueError:
        raise ValidationError(obj, field, f"{text!r} is not a CIDR or IP address") from None


def parse_ip_list(text: Any, obj: str, field: str) -> tuple[IPAddress, ...]:
    """`10.0.0.1` or `10.0.0.1,fd00::1`: at most one address per family."""
    ips = tuple(parse_ip(p, obj, field) for p in str(text).split(",") if p.strip())
    if not ips:
        raise ValidationError(obj, field, "is empty")
    if len({ip.version for ip in ips}) != len(ips):
        raise ValidationError(obj, field, f"{text!r} has two addresses of one family")
    return ips


def _str_list(raw: Any, obj: str, field: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValidationError(obj, field, "must be a list of strings")
    return raw


def _int(raw: Any, default: int, lo: int, hi: int, obj: str, field: str) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValidationError(obj, field, f"{raw!r} is not an integer")
    if not lo <= raw <= hi:
        raise ValidationError(obj, field, f"{raw} is out of range {lo}..{hi}")
    return raw


def _bool(raw: Any, obj: str, field: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise ValidationError(obj, field, f"{raw!r} is not true or false")
    return raw


def _enum(raw: Any, default: str, allowed: tuple[str, ...], obj: str, field: str) -> str:
    if raw is None or raw == "":
        return default
    if raw not in allowed:
        raise ValidationError(obj, field, f"{raw!r} is not one of {', '.join(allowed)}")
    return str(raw)


def parse_gateway(raw: Mapping[str, Any]) -> VpcEgressGateway:
    meta = _meta(raw)
    ns, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
    obj = f"VpcEgressGateway {ns}/{name}"
    if not name:
        raise ValidationError(obj, "metadata.name", "is missing")
    spec = raw.get("spec")
    if not isinstance(spec, Mapping):
        raise ValidationError(obj, "spec", "is missing")

    external = spec.get("externalSubnet")
    if not isinstance(external, str) or not external:
        raise ValidationError(obj, "spec.externalSubnet", "is required")
    prefix = spec.get("prefix") or ""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValidationError(obj, "spec.prefix", f"{prefix!r} is not a valid name prefix")

    bfd_raw = spec.get("bfd") or {}
    if not isinstance(bfd_raw, Mapping):
        raise ValidationError(obj, "spec.bfd", "must be an object")
    bfd = Bfd(
        enabled=_bool(bfd_raw.get("enabled"), obj, "spec.bfd.enabled"),
        min_rx=_int(bfd_raw.get("minRX"), 1000, *_BFD_RANGE, obj, "spec.bfd.minRX"),
        min_tx=_int(bfd_raw.get("minTX"), 1000, *_BFD_RANGE, obj, "spec.bfd.minTX"),
        multiplier=_int(bfd_raw.get("multiplier"), 3, *_BFD_RANGE, obj, "spec.bfd.multiplier"),
    )

    policies = []
    for i, p in enumerate(spec.get("policies") or []):
        where = f"spec.policies[{i}]"
        if not isinstance(p, Mapping):
            raise ValidationError(obj, where, "must be an object")
        blocks = tuple(parse_cidr(b, obj, f"{where}.ipBlocks")
                       for b in _str_list(p.get("ipBlocks"), obj, f"{where}.ipBlocks"))
        subnets = tuple(_str_list(p.get("subnets"), obj, f"{where}.subnets"))
        if not blocks and not subnets:
            raise ValidationError(obj, where, "needs ipBlocks or subnets")
        policies.append(EgressPolicy(_bool(p.get("snat"), obj, f"{where}.snat"), blocks, subnets))

    selectors = []
    for i, s in enumerate(spec.get("selectors") or []):
        where = f"spec.selectors[{i}]"
        if not isinstance(s, Mapping):
            raise ValidationError(obj, where, "must be an object")
        selectors.append(PodSelection(
            parse_label_selector(s.get("namespaceSelector"), obj, f"{where}.namespaceSelector"),
            parse_label_selector(s.get("podSelector"), obj, f"{where}.podSelector"),
        ))
    if not policies and not selectors:
        raise ValidationError(obj, "spec", "needs at least one policy or selector")

    terms = tuple(parse_node_selector_term(t, obj, f"spec.nodeSelector[{i}]")
                  for i, t in enumerate(spec.get("nodeSelector") or []))
    tolerations = spec.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise ValidationError(obj, "spec.tolerations", "must be a list")

    extras = _gateway_extras(spec, obj)
    return VpcEgressGateway(
        **extras,
        namespace=ns,
        name=name,
        external_subnet=external,
        vpc=str(spec.get("vpc") or DEFAULT_VPC),
        replicas=_int(spec.get("replicas"), 1, 0, MAX_REPLICAS, obj, "spec.replicas"),
        prefix=prefix,
        image=str(spec.get("image") or ""),
        internal_subnet=str(spec.get("internalSubnet") or ""),
        internal_ips=_instance_ips(spec.get("internalIPs"), obj, "spec.internalIPs"),
        external_ips=_instance_ips(spec.get("externalIPs"), obj, "spec.externalIPs"),
        bfd=bfd,
        bfd_mode=_enum(spec.get("bfdMode"), "route", ("route", "policy"),
                       obj, "spec.bfdMode"),  # type: ignore[arg-type]
        policies=tuple(policies),
        selectors=tuple(selectors),
        node_selector=terms,
        traffic_policy=_enum(spec.get("trafficPolicy"), "Cluster", ("Cluster", "Local"),
                             obj, "spec.trafficPolicy"),  # type: ignore[arg-type]
        tolerations=tuple(json.dumps(t, sort_keys=True) for t in tolerations),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        created=str(meta.get("creationTimestamp") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
    )


# Kube-OVN's message for both IP lists and a pool (its CEL rule says the same).
IPS_AND_POOL = "{0}IPs and {0}IPPool are mutually exclusive"


def _gateway_extras(spec: Mapping[str, Any], obj: str) -> dict[str, Any]:
    """The fields Kube-OVN added after v1.14: resources, bandwidth, podAntiAffinity, IP pools,
    observability."""
    bandwidth = spec.get("bandwidth") or {}
    if not isinstance(bandwidth, Mapping):
        raise ValidationError(obj, "spec.bandwidth", "must be an object")
    pools = {}
    for side in ("internal", "external"):
        pool = spec.get(f"{side}IPPool") or ""
        if not isinstance(pool, str):
            raise ValidationError(obj, f"spec.{side}IPPool", "must be the name of an IPPool")
        if pool and spec.get(f"{side}IPs"):
            raise ValidationError(obj, f"spec.{side}IPPool", IPS_AND_POOL.format(side))
        pools[f"{side}_ip_pool"] = pool
    return {
        "resources": parse_resources(spec.get("resources"), obj),
        "bandwidth_ingress": bandwidth_mbps(bandwidth.get("ingress"), obj,
                                            "spec.bandwidth.ingress"),
        "bandwidth_egress": bandwidth_mbps(bandwidth.get("egress"), obj, "spec.bandwidth.egress"),
        "pod_anti_affinity": _enum(spec.get("podAntiAffinity"), "Required",
                                   ("Required", "Preferred"), obj, "spec.podAntiAffinity"),
        "observability": parse_observability(spec.get("observability"), obj),
        **pools,
    }


def _ip_range(text: str, obj: str, field: str) -> tuple[IPAddress, IPAddress]:
    """One entry of an IPPool's spec.ips: `a`, `a/len` or `a..b` (inclusive)."""
    if ".." in text:
        first, _, last = text.partition("..")
        a, b = parse_ip(first, obj, field), parse_ip(last, obj, field)
        if a.version != b.version or a > b:  # type: ignore[operator]
            raise ValidationError(obj, field, f"{text!r} is not a range of one family, low..high")
        return a, b
    if "/" in text:
        net = parse_cidr(text, obj, field)
        return net.network_address, net.broadcast_address
    ip = parse_ip(text, obj, field)
    return ip, ip


def _count(raw: Any) -> int | None:
    """Kube-OVN writes its BigInt counts as numbers or numeric strings."""
    try:
        return int(str(raw)) if raw is not None and str(raw) != "" else None
    except ValueError:
        return None


def parse_ip_pool(raw: Mapping[str, Any]) -> IPPool:
    meta = _meta(raw)
    name = str(meta.get("name") or "")
    obj = f"IPPool {name}"
    if not name:
        raise ValidationError(obj, "metadata.name", "is missing")
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    entries = _str_list(spec.get("ips"), obj, "spec.ips")
    ranges = tuple(_ip_range(e.strip(), obj, "spec.ips") for e in entries if e.strip())
    available = tuple((family, n) for family, n in (
        (4, _count(status.get("v4AvailableIPs"))), (6, _count(status.get("v6AvailableIPs"))))
        if n is not None)
    return IPPool(name=name, subnet=str(spec.get("subnet") or ""), ranges=ranges,
                  available=available)


def _instance_ips(raw: Any, obj: str, field: str) -> tuple[tuple[IPAddress, ...], ...]:
    items = _str_list(raw, obj, field)
    out = tuple(parse_ip_list(item, obj, f"{field}[{i}]") for i, item in enumerate(items))
    seen: set[IPAddress] = set()
    for entry in out:
        for ip in entry:
            if ip in seen:
                raise ValidationError(obj, field, f"{ip} is listed twice")
            seen.add(ip)
    return out


def parse_vpc(raw: Mapping[str, Any]) -> Vpc:
    meta = _meta(raw)
    name = str(meta.get("name") or "")
    obj = f"Vpc {name}"
    if not name:
        raise ValidationError(obj, "metadata.name", "is missing")
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    port_raw = spec.get("bfdPort")
    port = BfdPort()
    if port_raw is not None:
        if not isinstance(port_raw, Mapping):
            raise ValidationError(obj, "spec.bfdPort", "must be an object")
        enabled = _bool(port_raw.get("enabled"), obj, "spec.bfdPort.enabled")
        ip_text = port_raw.get("ip") or ""
        if enabled and not ip_text:
            raise ValidationError(obj, "spec.bfdPort.ip", "is required when the port is enabled")
        ips = parse_ip_list(ip_text, obj, "spec.bfdPort.ip") if ip_text else ()
        selector = (parse_label_selector(port_raw["nodeSelector"], obj, "spec.bfdPort.nodeSelector")
                    if port_raw.get("nodeSelector") is not None else None)
        port = BfdPort(enabled, ips, selector)
    return Vpc(
        name=name,
        router=str(status.get("router") or ""),
        default_subnet=str(spec.get("defaultSubnet") or status.get("defaultLogicalSwitch") or ""),
        bfd_port=port,
    )


def parse_subnet(raw: Mapping[str, Any]) -> Subnet:
    meta = _meta(raw)
    name = str(meta.get("name") or "")
    obj = f"Subnet {name}"
    spec = raw.get("spec") or {}
    cidr_text = str(spec.get("cidrBlock") or "")
    cidrs = tuple(parse_cidr(c, obj, "spec.cidrBlock") for c in cidr_text.split(",") if c.strip())
    if not cidrs:
        raise ValidationError(obj, "spec.cidrBlock", "is required")
    if len({c.version for c in cidrs}) != len(cidrs):
        raise ValidationError(obj, "spec.cidrBlock", "has two CIDRs of one family")
    gw_text = str(spec.get("gateway") or "")
    if gw_text:
        gateways = tuple(parse_ip(g, obj, "spec.gateway") for g in gw_text.split(",") if g.strip())
    else:  # Kube-OVN's default: the first address of each CIDR
        gateways = tuple(c.network_address + 1 for c in cidrs)
    return Subnet(
        name=name,
        vpc=str(spec.get("vpc") or DEFAULT_VPC),
        cidrs=cidrs,
        gateways=gateways,
        provider=str(spec.get("provider") or "ovn"),
        default=bool(spec.get("default")),
    )


def parse_pod(raw: Mapping[str, Any]) -> Pod:
    meta = _meta(raw)
    spec = raw.get("spec") or {}
    status = raw.get("status") or {}
    annotations = meta.get("annotations") or {}
    ips: list[IPAddress] = []
    for entry in status.get("podIPs") or ([{"ip": status["podIP"]}] if status.get("podIP") else []):
        try:
            ips.append(ipaddress.ip_address(str(entry.get("ip"))))
        except ValueError:
            continue  # a pod reports what the CNI gave; ignore what is not an address
    networks, has_status = _network_status(annotations.get(NETWORK_STATUS))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [] if isinstance(c, Mapping))
    return Pod(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        labels=_labels(meta.get("labels")),
        ips=tuple(ips),
        node_name=str(spec.get("nodeName") or ""),
        phase=str(status.get("phase") or ""),
        ready=ready,
        host_network=bool(spec.get("hostNetwork")),
        deleting=bool(meta.get("deletionTimestamp")),
        logical_switch=str(annotations.get("ovn.kubernetes.io/logical_switch") or ""),
        networks=networks,
        has_network_status=has_status,
    )


def _network_status(text: Any) -> tuple[tuple[AttachedNetwork, ...], bool]:
    if not text:
        return (), False
    try:
        entries = json.loads(text)
    except (TypeError, ValueError):
        return (), False
    out = []
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, Mapping):
            continue
        ips = []
        for ip in e.get("ips") or []:
            try:
                ips.append(ipaddress.ip_address(str(ip)))
            except ValueError:
                continue
        out.append(AttachedNetwork(str(e.get("name") or ""), str(e.get("interface") or ""),
                                   tuple(ips)))
    return tuple(out), True


def parse_namespace(raw: Mapping[str, Any]) -> Namespace:
    meta = _meta(raw)
    return Namespace(str(meta.get("name") or ""), _labels(meta.get("labels")))


def parse_node(raw: Mapping[str, Any]) -> Node:
    meta = _meta(raw)
    annotations = meta.get("annotations") or {}
    conditions = (raw.get("status") or {}).get("conditions") or []
    ready = all(c.get("status") == "True" for c in conditions
                if isinstance(c, Mapping) and c.get("type") == "Ready")
    return Node(str(meta.get("name") or ""), _labels(meta.get("labels")),
                str(annotations.get("ovn.kubernetes.io/chassis") or ""), ready)


def parse_attachment(raw: Mapping[str, Any]) -> NetworkAttachmentDefinition:
    meta = _meta(raw)
    return NetworkAttachmentDefinition(str(meta.get("namespace") or "default"),
                                       str(meta.get("name") or ""))
