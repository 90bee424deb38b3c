"""Kube-OVN's IPAM and CNI plus Multus, as FakeCluster plays them (see `kubelet.py`): which
addresses a pod gets and the annotations that say so.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelet_rules import Obj, annotations_of, is_alive, meta_of

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network

LOGICAL_SWITCH = "ovn.kubernetes.io/logical_switch"
IP_POOL = "ovn.kubernetes.io/ip_pool"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK = "kube-ovn"  # Multus' name for the cluster network in network-status


class NoAddress(Exception):
    """IPAM or the CNI cannot wire the pod yet; it stays Pending and is retried."""


def ip_list(text: str) -> list[IP]:
    """The addresses of a comma-separated list; what is not an address is skipped."""
    out = []
    for part in str(text).split(","):
        try:
            out.append(ipaddress.ip_address(part.strip()))
        except ValueError:
            continue
    return out


@dataclass
class Subnet:
    name: str
    vpc: str
    provider: str
    cidrs: list[Net]
    gateways: list[IP]
    excluded: list[tuple[IP, IP]]
    namespaces: list[str]
    default: bool

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> Subnet:
        """A kubeovn.io/v1 Subnet; ValueError when its cidrBlock is not one."""
        spec = obj.get("spec") or {}
        cidrs = [ipaddress.ip_network(c.strip(), strict=False)
                 for c in str(spec.get("cidrBlock") or "").split(",") if c.strip()]
        gateways = ip_list(spec.get("gateway") or "") or [c.network_address + 1 for c in cidrs]
        excluded = []
        for item in spec.get("excludeIps") or []:
            lo, _, hi = str(item).partition("..")
            bounds = ip_list(lo) + ip_list(hi or lo)
            if len(bounds) == 2:
                excluded.append((bounds[0], bounds[1]))
        return cls(meta_of(obj)["name"], str(spec.get("vpc") or "ovn-cluster"),
                   str(spec.get("provider") or "ovn"), cidrs, gateways, excluded,
                   list(spec.get("namespaces") or []), bool(spec.get("default")))

    @property
    def cidr_block(self) -> str:
        return ",".join(map(str, self.cidrs))

    def reserved(self, ip: IP) -> bool:
        if ip in self.gateways:
            return True
        return any(lo.version == ip.version and lo <= ip <= hi  # type: ignore[operator]
                   for lo, hi in self.excluded)


def pod_addresses(pod: Mapping[str, Any]) -> set[IP]:
    """Every address a pod holds: Kube-OVN annotations, status and network-status."""
    out: set[IP] = set()
    for k, v in annotations_of(pod).items():
        if k.endswith(".kubernetes.io/ip_address"):
            out.update(ip_list(v))
    for entry in (pod.get("status") or {}).get("podIPs") or []:
        out.update(ip_list(entry.get("ip") or ""))
    try:
        networks = json.loads(annotations_of(pod).get(NETWORK_STATUS) or "[]")
    except ValueError:
        networks = []
    for net in networks if isinstance(networks, list) else []:
        if isinstance(net, dict):
            out.update(ip for text in net.get("ips") or [] for ip in ip_list(text))
    return out


class Ipam:
    """Kube-OVN's allocation rules over a set of subnets and the pods holding addresses."""

    def __init__(self, subnets: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]],
                 ip_pools: Iterable[Mapping[str, Any]] = ()):
        # IPPool name -> its addresses in order (`a`, `a/len`, `a..b` entries, as Kube-OVN)
        self.pools: dict[str, list[IP]] = {
            str(p["metadata"]["name"]): _pool_addresses((p.get("spec") or {}).get("ips") or [])
            for p in ip_pools}
        self.subnets: dict[str, Subnet] = {}
        for obj in subnets:
            try:
                subnet = Subnet.parse(obj)
            except ValueError:  # a test's deliberately broken subnet: Kube-OVN would skip it too
                continue
            self.subnets[subnet.name] = subnet
        self.used: set[IP] = set()
        for pod in pods:
            if is_alive(pod):
                self.used |= pod_addresses(pod)

    def by_provider(self, *providers: str) -> Subnet | None:
        for provider in providers:
            for s in self.subnets.values():
                if s.provider == provider:
                    return s
        return None

    def allocate(self, subnet: Subnet, pool: str | None) -> list[IP]:
        """The first free entry of pool (`;`-separated, an entry `v4`, `v6` or `v4,v6`), else the
        lowest free address of each family; families the entry lacks get the lowest free."""
        chosen: list[IP] = []
        if pool:
            entries = [e.strip() for e in pool.split(";") if e.strip()]
            if len(entries) == 1 and not ip_list(entries[0]):  # an IPPool's name
                if entries[0] not in self.pools:
                    raise NoAddress(f"IPPool {entries[0]!r} does not exist")
                entries = [str(ip) for ip in self.pools[entries[0]]]
            for entry in entries:
                ips = ip_list(entry)
                if not ips:
                    raise NoAddress(f"ip_pool {entry!r} is not an address list")
                inside = all(any(ip in c for c in subnet.cidrs) for ip in ips)
                if inside and not any(ip in self.used for ip in ips):
                    chosen = ips
                    break
            else:
                raise NoAddress(f"no free address in ip_pool {pool!r} of subnet {subnet.name}")
        for cidr in subnet.cidrs:
            if not any(ip.version == cidr.version for ip in chosen):
                chosen.append(self._lowest_free(subnet, cidr))
        self.used.update(chosen)
        return sorted(chosen, key=lambda ip: ip.version)

    def _lowest_free(self, subnet: Subnet, cidr: Net) -> IP:
        last = cidr.broadcast_address - (1 if cidr.version == 4 else 0)
        ip = cidr.network_address + 1
        for _ in range(1 << 16):
            if ip > last:
                break
            if ip not in self.used and not subnet.reserved(ip):
                return ip
            ip += 1
        raise NoAddress(f"subnet {subnet.name} has no free address in {cidr}")


def _pool_addresses(entries: Iterable[str]) -> list[IP]:
    out: list[IP] = []
    for entry in entries:
        if ".." in entry:
            first, last = (ipaddress.ip_address(x.strip()) for x in entry.split("..", 1))
            out += [first + i for i in range(int(last) - int(first) + 1)]
        elif "/" in entry:
            out += list(ipaddress.ip_network(entry, strict=False))
        else:
            out.append(ipaddress.ip_address(entry.strip()))
    return out


def _mac(seed: str) -> str:
    return "00:00:00:" + ":".join(f"{b:02x}" for b in hashlib.sha256(seed.encode()).digest()[:3])


def attachments(pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(namespace, NAD name, interface) of each `k8s.v1.cni.cncf.io/networks` entry:
    `ns/name`, `name` (the pod's namespace), `name@iface`, or the JSON list form."""
    text = (annotations_of(pod).get(NETWORKS) or "").strip()
    pod_ns = meta_of(pod).get("namespace") or "default"
    out: list[tuple[str, str, str]] = []
    if text.startswith("["):
        try:
            for i, e in enumerate(json.loads(text)):
                out.append((e.get("namespace") or pod_ns, e["name"],
                            e.get("interface") or f"net{i + 1}"))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise NoAddress(f"{NETWORKS} is not a valid network list: {text!r}") from None
        return out
    for i, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
        ref, _, iface = item.partition("@")
        ns, _, name = ref.rpartition("/")
        out.append((ns or pod_ns, name, iface or f"net{i + 1}"))
    return out


def nad_providers(nad: Mapping[str, Any]) -> list[str]:
    """The Kube-OVN providers a NAD stands for, most specific first: its config's
    `ipam.provider` or `provider`, else `<name>.<ns>` or `<name>.<ns>.ovn`."""
    m = meta_of(nad)
    base = f"{m['name']}.{m.get('namespace') or 'default'}"
    try:
        config = json.loads((nad.get("spec") or {}).get("config") or "{}")
    except ValueError:
        config = {}
    named = [p for p in ((config.get("ipam") or {}).get("provider"), config.get("provider")) if p]
    return [*named, base, f"{base}.ovn"]


def _address_annotations(prefix: str, subnet: Subnet, ips: list[IP], mac: str) -> dict[str, str]:
    return {f"{prefix}.kubernetes.io/allocated": "true",
            f"{prefix}.kubernetes.io/cidr": subnet.cidr_block,
            f"{prefix}.kubernetes.io/gateway": ",".join(map(str, subnet.gateways)),
            f"{prefix}.kubernetes.io/ip_address": ",".join(map(str, ips)),
            f"{prefix}.kubernetes.io/logical_switch": subnet.name,
            f"{prefix}.kubernetes.io/mac_address": mac}


def wire(ipam: Ipam, nads: Mapping[str, Obj], pod: Obj, static_ip: str | None = None) -> Obj:
    """The metadata patch that addresses a pod: Kube-OVN's annotations for eth0 (subnet of
    `logical_switch`, else one listing the namespace, else the default one; `static_ip` or
    `ip_pool`) and for each attachment, plus Multus' network-status. Raises NoAddress."""
    m = meta_of(pod)
    ns, ann = m.get("namespace") or "default", annotations_of(pod)
    name = ann.get(LOGICAL_SWITCH) or next(
        (s.name for s in ipam.subnets.values() if ns in s.namespaces),
        next((s.name for s in ipam.subnets.values() if s.default), ""))
    subnet = ipam.subnets.get(name)
    if subnet is None:
        raise NoAddress(f"subnet {name or '(default)'} does not exist")
    ips = ipam.allocate(subnet, static_ip or ann.get(IP_POOL))
    mac = _mac(f"{m.get('uid')}/eth0")
    out = {**_address_annotations("ovn", subnet, ips, mac),
           "ovn.kubernetes.io/logical_router": subnet.vpc,
           "ovn.kubernetes.io/pod_nic_type": "veth-pair",
           "ovn.kubernetes.io/routed": "true"}
    status: list[Obj] = [{"name": DEFAULT_NETWORK, "interface": "eth0",
                          "ips": [str(i) for i in ips], "mac": mac, "default": True, "dns": {},
                          "gateway": [str(g) for g in subnet.gateways]}]
    for nad_ns, nad_name, iface in attachments(pod):
        nad = nads.get(f"{nad_ns}/{nad_name}")
        if nad is None:
            raise NoAddress(f"NetworkAttachmentDefinition {nad_ns}/{nad_name} not found")
        ext = ipam.by_provider(*nad_providers(nad))
        if ext is None:
            raise NoAddress(f"no subnet has a provider of {nad_ns}/{nad_name}")
        eips = ipam.allocate(ext, ann.get(f"{ext.provider}.kubernetes.io/ip_pool"))
        emac = _mac(f"{m.get('uid')}/{iface}")
        out.update(_address_annotations(ext.provider, ext, eips, emac))
        status.append({"name": f"{nad_ns}/{nad_name}", "interface": iface,
                       "ips": [str(i) for i in eips], "mac": emac, "dns": {}})
    out[NETWORK_STATUS] = json.dumps(status)
    return {"metadata": {"annotations": out}}
