"""Desired NB rows, as plain frozen values. `nb/` turns them into one transaction per owner.

Every row has a `key`: its natural identity among the rows of one owner (the NB schema's own
index where it has one). The engine matches live rows to desired rows by key, so a row whose
key changes is deleted and created, and a row whose other columns change is updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

Pairs = tuple[tuple[str, str], ...]


def pairs(mapping: dict[str, str]) -> Pairs:
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class BfdRef:
    """A BFD row by its schema index (logical_port, dst_ip)."""

    logical_port: str
    dst_ip: str


@dataclass(frozen=True)
class AddressSet:
    table: ClassVar[str] = "Address_Set"
    name: str
    addresses: tuple[str, ...]
    external_ids: Pairs

    @property
    def key(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class Bfd:
    table: ClassVar[str] = "BFD"
    logical_port: str
    dst_ip: str
    min_rx: int
    min_tx: int
    detect_mult: int
    external_ids: Pairs

    @property
    def key(self) -> tuple[str, ...]:
        return (self.logical_port, self.dst_ip)

    @property
    def ref(self) -> BfdRef:
        return BfdRef(self.logical_port, self.dst_ip)


@dataclass(frozen=True)
class RouterPolicy:
    """Logical_Router_Policy, a child of Logical_Router `router` (column policies)."""

    table: ClassVar[str] = "Logical_Router_Policy"
    router: str
    priority: int
    match: str
    action: str  # reroute | drop | allow
    nexthops: tuple[str, ...] = ()
    bfd_sessions: tuple[BfdRef, ...] = ()  # written only where the schema has the column
    external_ids: Pairs = ()

    @property
    def key(self) -> tuple[str, ...]:
        return (self.router, str(self.priority), self.match)


@dataclass(frozen=True)
class StaticRoute:
    """Logical_Router_Static_Route, a child of Logical_Router `router` (column static_routes)."""

    table: ClassVar[str] = "Logical_Router_Static_Route"
    router: str
    ip_prefix: str
    nexthop: str
    policy: str = "src-ip"
    options: Pairs = ()
    bfd: BfdRef | None = None
    external_ids: Pairs = ()

    @property
    def key(self) -> tuple[str, ...]:
        return (self.router, self.policy, self.ip_prefix, self.nexthop)


@dataclass(frozen=True)
class HaChassis:
    chassis_name: str
    priority: int


@dataclass(frozen=True)
class HaChassisGroup:
    """HA_Chassis_Group with its HA_Chassis children (owned through the group)."""

    table: ClassVar[str] = "HA_Chassis_Group"
    name: str
    chassis: tuple[HaChassis, ...]
    external_ids: Pairs

    @property
    def key(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class RouterPort:
    """Logical_Router_Port, a child of Logical_Router `router` (column ports)."""

    table: ClassVar[str] = "Logical_Router_Port"
    router: str
    name: str
    mac: str
    networks: tuple[str, ...]
    options: Pairs = ()
    ha_chassis_group: str = ""  # name of an HA_Chassis_Group of the same owner
    external_ids: Pairs = ()

    @property
    def key(self) -> tuple[str, ...]:
        return (self.name,)


@dataclass(frozen=True)
class Switch:
    """Logical_Switch with router-type ports (owned through the switch)."""

    table: ClassVar[str] = "Logical_Switch"
    name: str
    router_ports: tuple[tuple[str, str], ...]  # (switch port name, router port it peers)
    external_ids: Pairs

    @property
    def key(self) -> tuple[str, ...]:
        return (self.name,)


Row = AddressSet | Bfd | RouterPolicy | StaticRoute | HaChassisGroup | RouterPort | Switch
ROW_TYPES: tuple[type, ...] = (AddressSet, Bfd, RouterPolicy, StaticRoute, HaChassisGroup,
                               RouterPort, Switch)


@dataclass(frozen=True)
class Owner:
    """Who owns a set of rows: the external_ids key and value that mark them."""

    id_key: str  # "vpc-egress-gateway" or "vpc"
    id_value: str  # "<ns>/<name>" or the VPC name
    routers: tuple[str, ...] = ()  # routers whose children the owner may hold

    def __str__(self) -> str:
        return f"{self.id_key}={self.id_value}"


@dataclass(frozen=True)
class Desired:
    """All rows one owner should have in NB: anything else it owns is deleted."""

    owner: Owner
    rows: tuple[Row, ...] = field(default_factory=tuple)

    def of(self, kind: type) -> list[Row]:
        return [r for r in self.rows if isinstance(r, kind)]
