"""Desired NB rows, as plain frozen values: one definition per NB table, used by `plan/` to build
rows and by `nb/` to match, write and refuse them.

Each row class says, once, what the table is to vegd:
- `KEY`: the columns that identify a row among one owner's rows (the NB schema's own index where
  it has one); children of a router are identified within their router (`ROUTER_COLUMN`);
- `UNIQUE`: whether `KEY` is a schema-wide index, so that another writer may already hold it;
- `columns()`: every column vegd writes, references to other desired rows as `Ref`s.

The engine matches live rows to desired rows by key, so a row whose key changes is deleted and
created, and a row whose other columns change is updated in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

Pairs = tuple[tuple[str, str], ...]
POLICY_ACTIONS = ("reroute", "drop", "allow")
MAX_POLICY_PRIORITY = 32767  # Logical_Router_Policy.priority and HA_Chassis.priority: 0..32767
# Key columns whose live value is an optional (0 or 1 element) column, and its meaning when empty.
OPTIONAL_DEFAULTS = {"policy": "dst-ip"}


@dataclass(frozen=True)
class Ref:
    """A reference to another desired row of the same transaction, by table and key."""

    table: str
    key: tuple[str, ...]


def pairs(mapping: dict[str, str]) -> Pairs:
    return tuple(sorted(mapping.items()))


@dataclass(frozen=True)
class BfdRef:
    """A BFD row by its schema index (logical_port, dst_ip)."""

    logical_port: str
    dst_ip: str

    @property
    def ref(self) -> Ref:
        return Ref("BFD", (self.logical_port, self.dst_ip))


class _Row:
    table: ClassVar[str]
    KEY: ClassVar[tuple[str, ...]] = ("name",)
    ROUTER_COLUMN: ClassVar[str] = ""  # the Logical_Router column holding it; "" for a root row
    UNIQUE: ClassVar[bool] = True

    @property
    def key(self) -> tuple[str, ...]:
        own = tuple(str(getattr(self, c)) for c in self.KEY)
        # a router's child is one of its router's rows, unless its key is schema-wide
        if self.ROUTER_COLUMN and not self.UNIQUE:
            return (str(getattr(self, "router")), *own)  # noqa: B009 - only children have it
        return own

    def columns(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class AddressSet(_Row):
    table: ClassVar[str] = "Address_Set"
    name: str
    addresses: tuple[str, ...]
    external_ids: Pairs

    def columns(self) -> dict[str, Any]:
        return {"name": self.name, "addresses": list(self.addresses),
                "external_ids": dict(self.external_ids)}


@dataclass(frozen=True)
class Bfd(_Row):
    table: ClassVar[str] = "BFD"
    KEY: ClassVar[tuple[str, ...]] = ("logical_port", "dst_ip")
    logical_port: str
    dst_ip: str
    min_rx: int
    min_tx: int
    detect_mult: int
    external_ids: Pairs

    def __post_init__(self) -> None:
        if min(self.min_rx, self.min_tx, self.detect_mult) < 1:
            raise ValueError(f"BFD {self.dst_ip}: timers must be positive")

    @property
    def ref(self) -> BfdRef:
        return BfdRef(self.logical_port, self.dst_ip)

    def columns(self) -> dict[str, Any]:
        return {"logical_port": self.logical_port, "dst_ip": self.dst_ip,
                "min_rx": [self.min_rx], "min_tx": [self.min_tx],
                "detect_mult": [self.detect_mult], "external_ids": dict(self.external_ids)}


@dataclass(frozen=True)
class RouterPolicy(_Row):
    """Logical_Router_Policy, a child of Logical_Router `router` (column policies)."""

    table: ClassVar[str] = "Logical_Router_Policy"
    KEY: ClassVar[tuple[str, ...]] = ("priority", "match")
    ROUTER_COLUMN: ClassVar[str] = "policies"
    UNIQUE: ClassVar[bool] = False
    router: str
    priority: int
    match: str
    action: str  # one of POLICY_ACTIONS
    nexthops: tuple[str, ...] = ()
    bfd_sessions: tuple[BfdRef, ...] = ()  # written only where the schema has the column
    external_ids: Pairs = ()

    def __post_init__(self) -> None:
        # what ovsdbapp's LrPolicyAddCommand refuses, refused when the plan is made
        if not 0 <= self.priority <= MAX_POLICY_PRIORITY:
            raise ValueError(f"policy priority {self.priority} is out of 0..{MAX_POLICY_PRIORITY}")
        if self.action not in POLICY_ACTIONS:
            raise ValueError(f"policy action {self.action!r} is not one of {POLICY_ACTIONS}")
        if (self.action == "reroute") != bool(self.nexthops):
            raise ValueError(f"policy {self.match!r}: nexthops go with reroute, and only there")

    def columns(self) -> dict[str, Any]:
        return {"priority": self.priority, "match": self.match, "action": self.action,
                "nexthops": list(self.nexthops),
                "bfd_sessions": [b.ref for b in self.bfd_sessions],
                "external_ids": dict(self.external_ids)}


@dataclass(frozen=True)
class StaticRoute(_Row):
    """Logical_Router_Static_Route, a child of Logical_Router `router` (column static_routes)."""

    table: ClassVar[str] = "Logical_Router_Static_Route"
    KEY: ClassVar[tuple[str, ...]] = ("policy", "ip_prefix", "nexthop")
    ROUTER_COLUMN: ClassVar[str] = "static_routes"
    UNIQUE: ClassVar[bool] = False
    router: str
    ip_prefix: str
    nexthop: str
    policy: str = "src-ip"
    options: Pairs = ()
    bfd: BfdRef | None = None
    external_ids: Pairs = ()

    def columns(self) -> dict[str, Any]:
        return {"ip_prefix": self.ip_prefix, "nexthop": self.nexthop, "policy": [self.policy],
                "options": dict(self.options), "bfd": [self.bfd.ref] if self.bfd else [],
                "external_ids": dict(self.external_ids)}


@dataclass(frozen=True)
class HaChassis:
    chassis_name: str
    priority: int

    def __post_init__(self) -> None:
        if not 0 <= self.priority <= MAX_POLICY_PRIORITY:
            raise ValueError(f"HA chassis priority {self.priority} is out of range")


@dataclass(frozen=True)
class HaChassisGroup(_Row):
    """HA_Chassis_Group with its HA_Chassis children (owned through the group)."""

    table: ClassVar[str] = "HA_Chassis_Group"
    name: str
    chassis: tuple[HaChassis, ...]
    external_ids: Pairs

    def columns(self) -> dict[str, Any]:
        return {"name": self.name, "external_ids": dict(self.external_ids)}


@dataclass(frozen=True)
class RouterPort(_Row):
    """Logical_Router_Port, a child of Logical_Router `router` (column ports). Its name is a
    schema-wide index: its key is the name alone."""

    table: ClassVar[str] = "Logical_Router_Port"
    ROUTER_COLUMN: ClassVar[str] = "ports"
    router: str
    name: str
    mac: str
    networks: tuple[str, ...]
    options: Pairs = ()
    ha_chassis_group: str = ""  # name of an HA_Chassis_Group of the same owner
    external_ids: Pairs = ()

    def columns(self) -> dict[str, Any]:
        group = [Ref("HA_Chassis_Group", (self.ha_chassis_group,))] \
            if self.ha_chassis_group else []
        return {"name": self.name, "mac": self.mac, "networks": list(self.networks),
                "options": dict(self.options), "ha_chassis_group": group,
                "external_ids": dict(self.external_ids)}


@dataclass(frozen=True)
class Switch(_Row):
    """Logical_Switch with router-type ports (owned through the switch)."""

    table: ClassVar[str] = "Logical_Switch"
    UNIQUE: ClassVar[bool] = False  # Logical_Switch.name has no schema index
    name: str
    router_ports: tuple[tuple[str, str], ...]  # (switch port name, router port it peers)
    external_ids: Pairs

    def columns(self) -> dict[str, Any]:
        return {"name": self.name, "external_ids": dict(self.external_ids)}

    def port_columns(self, name: str, router_port: str) -> dict[str, Any]:
        return {"name": name, "type": "router", "addresses": ["router"],
                "options": {"router-port": router_port},
                "external_ids": dict(self.external_ids)}


Row = AddressSet | Bfd | RouterPolicy | StaticRoute | HaChassisGroup | RouterPort | Switch
# Every table an owner holds rows in directly, referenced tables before their referrers (so a
# referrer can point at a row inserted in the same transaction).
ROW_TYPES: tuple[type[_Row], ...] = (Bfd, HaChassisGroup, AddressSet, RouterPort, Switch,
                                     RouterPolicy, StaticRoute)
TABLES: dict[str, type[_Row]] = {t.table: t for t in ROW_TYPES}


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


@dataclass(frozen=True)
class Members:
    """The addresses one owner's existing Address_Set should hold, written by mutation (insert
    and delete of `addresses` members) when nothing else of the owner's rows can have changed:
    a reconcile of selected pods only (`plan.gateway.selector_set_members`)."""

    owner: Owner
    name: str
    addresses: tuple[str, ...]
