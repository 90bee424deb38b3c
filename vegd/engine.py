"""Validate, plan and write: the reconcile core shared by `vegd apply` and `vegd run`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vegd.model.errors import ValidationError
from vegd.model.objects import Snapshot
from vegd.model.resolve import ResolvedGateway, resolve_gateway
from vegd.nb.client import NbClient
from vegd.nb.errors import ReconcileError
from vegd.nb.sync import Changes
from vegd.plan.gateway import OWNER_KEY as GATEWAY_KEY
from vegd.plan.gateway import plan_gateway
from vegd.plan.rows import Desired
from vegd.plan.settings import PlanSettings
from vegd.plan.vpc import OWNER_KEY as VPC_KEY
from vegd.plan.vpc import plan_vpc


@dataclass
class OwnerResult:
    owner: str
    changes: Changes = field(default_factory=Changes)
    error: str = ""
    seconds: float = 0.0


@dataclass
class Validation:
    resolved: dict[str, ResolvedGateway] = field(default_factory=dict)
    errors: list[ValidationError] = field(default_factory=list)


def validate(snap: Snapshot, policy_bfd_sessions: bool = True,
             bfd_port_mode: str = "stock") -> Validation:
    out = Validation()
    for gw in sorted(snap.gateways, key=lambda g: g.key):
        if gw.deleting:
            continue
        try:
            out.resolved[gw.key] = resolve_gateway(gw, snap, policy_bfd_sessions,
                                                   bfd_port_mode)
        except ValidationError as exc:
            out.errors.append(exc)
    return out


def plan_all(snap: Snapshot, resolved: dict[str, ResolvedGateway], settings: PlanSettings
             ) -> list[Desired]:
    """VPC owners first: gateways' BFD rows name the VPC's BFD port."""
    plans = [plan_vpc(vpc, snap, settings) for vpc in sorted(snap.all_vpcs(), key=lambda v: v.name)]
    plans += [plan_gateway(resolved[key], snap, settings) for key in sorted(resolved)]
    return plans


def missing_routers(nb: NbClient, plans: list[Desired]) -> list[str]:
    """Owners whose router is not in NB; checked before any write."""
    routers = nb.router_names()
    return [f"{p.owner}: logical router {r} does not exist in the Northbound database"
            for p in plans if p.rows for r in p.owner.routers if r not in routers]


def write(nb: NbClient, plans: list[Desired], vendor: str) -> list[OwnerResult]:
    results = []
    for desired in plans:
        start = time.monotonic()
        result = OwnerResult(str(desired.owner))
        try:
            result.changes = nb.reconcile(desired, vendor)
        except ReconcileError as exc:
            result.error = str(exc)
        result.seconds = time.monotonic() - start
        results.append(result)
    return results


def owners_to_keep(snap: Snapshot) -> set[tuple[str, str]]:
    keep = {(GATEWAY_KEY, g.key) for g in snap.gateways}
    keep |= {(VPC_KEY, v.name) for v in snap.all_vpcs()}
    return keep


__all__ = ["OwnerResult", "Validation", "missing_routers", "owners_to_keep", "plan_all",
           "validate", "write"]
