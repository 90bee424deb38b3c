"""Deterministic NB names. `h` is the first 12 hex digits of SHA-256 of the owner key."""

from __future__ import annotations

import hashlib

from vegd.model.objects import Family

POLICY_PRIORITY = 29100  # cluster-wide reroute, as Kube-OVN
DROP_PRIORITY = 29090  # fail closed when no instance can take the traffic
ALLOW_PRIORITY = 29095  # route mode: keep what routing sent to an instance (docs/fail-closed.md)
LOCAL_PRIORITY = 29150  # trafficPolicy Local: prefer instances on the source's node


def owner_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def selector_set(key: str, family: Family) -> str:
    """Address set of the pods a gateway's selectors choose (`VEG.<h>_ip4`)."""
    return f"VEG.{owner_hash(key)}_ip{family}"


def node_set(key: str, node: str, family: Family) -> str:
    """Address set of a gateway's source pods on one node (trafficPolicy Local)."""
    return f"VEG.{owner_hash(key)}.n{hashlib.sha256(node.encode()).hexdigest()[:8]}_ip{family}"


def bfd_port(vpc: str) -> str:
    return f"bfd@{vpc}"


def bfd_peer_switch(vpc: str) -> str:
    """The one-port switch that gives bfd@<vpc> a peer on stock OVN (docs/bfd-port.md)."""
    return f"bfd-peer@{vpc}"


def subnet_router_port(router: str, subnet: str) -> str:
    """Kube-OVN's name for the router port of a subnet."""
    return f"{router}-{subnet}"


def bfd_port_mac(vpc: str) -> str:
    """Locally administered unicast MAC, stable across restarts (Kube-OVN's is random)."""
    digest = hashlib.sha256(bfd_port(vpc).encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x0A, *digest[:5]))


def ovn_prefix(net: str) -> str:
    """The prefix as ovn-nbctl stores it: host routes without /32 or /128."""
    return net.removesuffix("/32") if "." in net else net.removesuffix("/128")


def ip_match(family: Family, value: str) -> str:
    return f"ip{family}.src == {value}"


def nexthop_register(family: Family) -> str:
    """The register northd's routing stage leaves the chosen nexthop in (reg0 / xxreg0)."""
    return "reg0" if family == 4 else "xxreg0"


def ovn_set(values: list[str] | tuple[str, ...]) -> str:
    return "{" + ", ".join(values) + "}"
