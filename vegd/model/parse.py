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

from vegd.model.destinations import parse_destinations
from vegd.model.errors import ValidationError
from vegd.model.limits import (
    BFD_INTERVAL_RANGE,
    BFD_MULTIPLIER_RANGE,
    CRD_BFD_RANGE,
    REPLICAS_RANGE,
)
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

# A dotted quad as `ipaddress` accepts it (no leading zeros): parsed here at C speed, since
# every pod has one or two (ipaddress parses each octet in Python: 5% of a 20,000-pod apply).
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")


def _ip(text: str) -> IPAddress:
    m = _DOTTED_QUAD.fullmatch(text)
    if m is None:
        return ipaddress.ip_address(text)
    a, b, c, d = m.groups()
    return ipaddress.IPv4Address((int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d))


_PREFIX = re.compile(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*[-.]?$")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _labels(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in raw.items()))


def _type_error(raw: Any, obj: str, field: str, what: str) -> ValidationError:
    return ValidationError(obj, field, f"must be {what}, not {type(raw).__name__} {raw!r:.40}")


def _map(raw: Any, obj: str, field: str) -> Mapping[str, Any]:
    """An object field; absent is empty."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _type_error(raw, obj, field, "an object")
    return raw


def _list(raw: Any, obj: str, field: str) -> list[Any]:
    """A list field; absent is empty."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _type_error(raw, obj, field, "a list")
    return raw


def _text(raw: Any, obj: str, field: str, default: str = "") -> str:
    """A string field; absent (or empty) is the default."""
    if raw is None or raw == "":
        return default
    if not isinstance(raw, str):
        raise _type_error(raw, obj, field, "a string")
    return raw


def _annotations(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = meta.get("annotations")
    return raw if isinstance(raw, Mapping) else {}


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


def _bfd_timer(raw: Any, default: int, bounds: tuple[int, int], obj: str, field: str) -> int:
    """The CRD admits 1..3600000; FRR's bfdd runs only `bounds`. Refused outside them, so NB and
    the gateway pod get the same numbers (model/limits.py)."""
    value = _int(raw, default, *CRD_BFD_RANGE, obj, field)
    if not bounds[0] <= value <= bounds[1]:
        raise ValidationError(obj, field, f"{value} is out of range {bounds[0]}..{bounds[1]}, "
                              "what the gateway's FRR bfdd accepts")
    return value


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
        raise ValidationError(obj, "spec", "is missing" if spec is None
                              else f"must be an object, not {type(spec).__name__}")

    external = spec.get("externalSubnet")
    if not isinstance(external, str) or not external:
        raise ValidationError(obj, "spec.externalSubnet", "is required" if not external
                              else f"must be a string, not {type(external).__name__}")
    prefix = spec.get("prefix") or ""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValidationError(obj, "spec.prefix", f"{prefix!r} is not a valid name prefix")

    bfd_raw = _map(spec.get("bfd"), obj, "spec.bfd")
    bfd = Bfd(
        enabled=_bool(bfd_raw.get("enabled"), obj, "spec.bfd.enabled"),
        min_rx=_bfd_timer(bfd_raw.get("minRX"), 1000, BFD_INTERVAL_RANGE, obj, "spec.bfd.minRX"),
        min_tx=_bfd_timer(bfd_raw.get("minTX"), 1000, BFD_INTERVAL_RANGE, obj, "spec.bfd.minTX"),
        multiplier=_bfd_timer(bfd_raw.get("multiplier"), 3, BFD_MULTIPLIER_RANGE,
                              obj, "spec.bfd.multiplier"),
    )

    policies = []
    for i, p in enumerate(_list(spec.get("policies"), obj, "spec.policies")):
        where = f"spec.policies[{i}]"
        if not isinstance(p, Mapping):
            raise ValidationError(obj, where, "must be an object")
        blocks = tuple(parse_cidr(b, obj, f"{where}.ipBlocks")
                       for b in _str_list(p.get("ipBlocks"), obj, f"{where}.ipBlocks"))
        subnets = tuple(_str_list(p.get("subnets"), obj, f"{where}.subnets"))
        if not blocks and not subnets:
            raise ValidationError(obj, where, "needs ipBlocks or subnets")
        policies.append(EgressPolicy(_bool(p.get("snat"), obj, f"{where}.snat"), blocks, subnets,
                                     parse_destinations(p, obj, where)))

    selectors = []
    for i, s in enumerate(_list(spec.get("selectors"), obj, "spec.selectors")):
        where = f"spec.selectors[{i}]"
        if not isinstance(s, Mapping):
            raise ValidationError(obj, where, "must be an object")
        selectors.append(PodSelection(
            parse_label_selector(s.get("namespaceSelector"), obj, f"{where}.namespaceSelector"),
            parse_label_selector(s.get("podSelector"), obj, f"{where}.podSelector"),
            parse_destinations(s, obj, where),
        ))
    if not policies and not selectors:
        raise ValidationError(obj, "spec", "needs at least one policy or selector")

    terms = tuple(parse_node_selector_term(t, obj, f"spec.nodeSelector[{i}]")
                  for i, t in enumerate(_list(spec.get("nodeSelector"), obj, "spec.nodeSelector")))
    tolerations = _list(spec.get("tolerations"), obj, "spec.tolerations")
    for i, t in enumerate(tolerations):
        if not isinstance(t, Mapping):
            raise _type_error(t, obj, f"spec.tolerations[{i}]", "an object")
    generation = meta.get("generation") or 0
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise _type_error(generation, obj, "metadata.generation", "an integer")

    extras = _gateway_extras(spec, obj)
    return VpcEgressGateway(
        **extras,
        namespace=ns,
        name=name,
        external_subnet=external,
        vpc=_text(spec.get("vpc"), obj, "spec.vpc", DEFAULT_VPC),
        replicas=_int(spec.get("replicas"), 1, *REPLICAS_RANGE, obj, "spec.replicas"),
        prefix=prefix,
        image=_text(spec.get("image"), obj, "spec.image"),
        internal_subnet=_text(spec.get("internalSubnet"), obj, "spec.internalSubnet"),
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
        generation=generation,
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
    spec = _map(raw.get("spec"), obj, "spec")
    status = _map(raw.get("status"), obj, "status")
    port_raw = spec.get("bfdPort")
    port = BfdPort()
    if port_raw is not None:
        if not isinstance(port_raw, Mapping):
            raise _type_error(port_raw, obj, "spec.bfdPort", "an object")
        enabled = _bool(port_raw.get("enabled"), obj, "spec.bfdPort.enabled")
        ip_text = _text(port_raw.get("ip"), obj, "spec.bfdPort.ip")
        if enabled and not ip_text:
            raise ValidationError(obj, "spec.bfdPort.ip", "is required when the port is enabled")
        ips = parse_ip_list(ip_text, obj, "spec.bfdPort.ip") if ip_text else ()
        selector = (parse_label_selector(port_raw["nodeSelector"], obj, "spec.bfdPort.nodeSelector")
                    if port_raw.get("nodeSelector") is not None else None)
        port = BfdPort(enabled, ips, selector)
    default_subnet = _text(spec.get("defaultSubnet"), obj, "spec.defaultSubnet") or _text(
        status.get("defaultLogicalSwitch"), obj, "status.defaultLogicalSwitch")
    return Vpc(
        name=name,
        router=_text(status.get("router"), obj, "status.router"),
        default_subnet=default_subnet,
        bfd_port=port,
    )


def parse_subnet(raw: Mapping[str, Any]) -> Subnet:
    meta = _meta(raw)
    name = str(meta.get("name") or "")
    obj = f"Subnet {name}"
    spec = _map(raw.get("spec"), obj, "spec")
    cidr_text = _text(spec.get("cidrBlock"), obj, "spec.cidrBlock")
    cidrs = tuple(parse_cidr(c, obj, "spec.cidrBlock") for c in cidr_text.split(",") if c.strip())
    if not cidrs:
        raise ValidationError(obj, "spec.cidrBlock", "is required")
    if len({c.version for c in cidrs}) != len(cidrs):
        raise ValidationError(obj, "spec.cidrBlock", "has two CIDRs of one family")
    gw_text = _text(spec.get("gateway"), obj, "spec.gateway")
    if gw_text:
        gateways = tuple(parse_ip(g, obj, "spec.gateway") for g in gw_text.split(",") if g.strip())
        _check_gateways(gateways, cidrs, obj)
    else:  # Kube-OVN's default: the first address of each CIDR
        gateways = tuple(c.network_address + 1 for c in cidrs)
    return Subnet(
        name=name,
        vpc=_text(spec.get("vpc"), obj, "spec.vpc", DEFAULT_VPC),
        cidrs=cidrs,
        gateways=gateways,
        provider=_text(spec.get("provider"), obj, "spec.provider", "ovn"),
        default=_bool(spec.get("default"), obj, "spec.default"),
    )


def _check_gateways(gateways: tuple[IPAddress, ...], cidrs: tuple[IPNetwork, ...],
                    obj: str) -> None:
    """One gateway per family, inside the subnet's CIDR of that family (Kube-OVN's rule)."""
    if len({g.version for g in gateways}) != len(gateways):
        raise ValidationError(obj, "spec.gateway", "has two addresses of one family")
    for gw in gateways:
        cidr = next((c for c in cidrs if c.version == gw.version), None)
        if cidr is None:
            raise ValidationError(obj, "spec.gateway", f"{gw} is IPv{gw.version} but "
                                  f"spec.cidrBlock has no IPv{gw.version} CIDR")
        if gw not in cidr:
            raise ValidationError(obj, "spec.gateway", f"{gw} is outside the subnet's {cidr}")


def parse_pod(raw: Mapping[str, Any]) -> Pod:
    meta = _meta(raw)
    obj = f"Pod {meta.get('namespace') or 'default'}/{meta.get('name') or ''}"
    spec = _map(raw.get("spec"), obj, "spec")
    status = _map(raw.get("status"), obj, "status")
    annotations = _annotations(meta)
    ips: list[IPAddress] = []
    entries = _list(status.get("podIPs"), obj, "status.podIPs")
    if not entries and status.get("podIP"):
        entries = [{"ip": status["podIP"]}]
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise _type_error(entry, obj, f"status.podIPs[{i}]", "an object with an ip")
        try:
            ips.append(_ip(str(entry.get("ip"))))
        except ValueError:
            continue  # a pod reports what the CNI gave; ignore what is not an address
    networks, has_status = _network_status(annotations.get(NETWORK_STATUS), obj)
    conditions = _list(status.get("conditions"), obj, "status.conditions")
    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in conditions if isinstance(c, Mapping))
    return Pod(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name") or ""),
        labels=_labels(meta.get("labels")),
        ips=tuple(ips),
        node_name=_text(spec.get("nodeName"), obj, "spec.nodeName"),
        phase=_text(status.get("phase"), obj, "status.phase"),
        ready=ready,
        host_network=_bool(spec.get("hostNetwork"), obj, "spec.hostNetwork"),
        deleting=bool(meta.get("deletionTimestamp")),
        logical_switch=_text(annotations.get("ovn.kubernetes.io/logical_switch"), obj,
                             "metadata.annotations[ovn.kubernetes.io/logical_switch]"),
        networks=networks,
        has_network_status=has_status,
    )


def _network_status(text: Any, obj: str) -> tuple[tuple[AttachedNetwork, ...], bool]:
    """Multus' network-status annotation: a JSON list of {name, interface, ips}. A malformed one
    is refused: which network holds the instance's external address cannot be guessed."""
    if not text:
        return (), False
    field = f"metadata.annotations[{NETWORK_STATUS}]"
    try:
        entries = json.loads(text) if isinstance(text, str) else None
    except ValueError as exc:
        raise ValidationError(obj, field, f"is not JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ValidationError(obj, field, "must be a JSON list of networks")
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, Mapping):
            raise ValidationError(obj, f"{field}[{i}]", "must be a JSON object")
        ips = []
        for ip in _list(e.get("ips"), obj, f"{field}[{i}].ips"):
            try:
                ips.append(_ip(ip if isinstance(ip, str) else ""))
            except ValueError:
                raise ValidationError(obj, f"{field}[{i}].ips",
                                      f"{ip!r} is not an IP address") from None
        out.append(AttachedNetwork(_text(e.get("name"), obj, f"{field}[{i}].name"),
                                   _text(e.get("interface"), obj, f"{field}[{i}].interface"),
                                   tuple(ips)))
    return tuple(out), True


def parse_namespace(raw: Mapping[str, Any]) -> Namespace:
    meta = _meta(raw)
    return Namespace(str(meta.get("name") or ""), _labels(meta.get("labels")))


def parse_node(raw: Mapping[str, Any]) -> Node:
    meta = _meta(raw)
    obj = f"Node {meta.get('name') or ''}"
    annotations = _annotations(meta)
    status = _map(raw.get("status"), obj, "status")
    conditions = _list(status.get("conditions"), obj, "status.conditions")
    ready = all(c.get("status") == "True" for c in conditions
                if isinstance(c, Mapping) and c.get("type") == "Ready")
    return Node(str(meta.get("name") or ""), _labels(meta.get("labels")),
                _text(annotations.get("ovn.kubernetes.io/chassis"), obj,
                      "metadata.annotations[ovn.kubernetes.io/chassis]"), ready)


def parse_attachment(raw: Mapping[str, Any]) -> NetworkAttachmentDefinition:
    meta = _meta(raw)
    return NetworkAttachmentDefinition(str(meta.get("namespace") or "default"),
                                       str(meta.get("name") or ""))
