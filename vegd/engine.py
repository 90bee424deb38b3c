"""Validate, plan and write: the reconcile core shared by `vegd apply` and the controller.

Writing is one transaction for a batch of owners. `vegd apply` writes every owner in one
transaction (all or nothing); the controller writes what its worker took from the queue in one
transaction and, when some owners are refused, writes the others without them (`write_split`).
An owner that needs a unique row another owner of ours still holds (an instance address that
moved between gateways) is written together with that owner, which gives it up in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vegd.model.errors import ValidationError
from vegd.model.objects import Snapshot
from vegd.model.resolve import ResolvedGateway, resolve_gateway
from vegd.nb.client import NbClient
from vegd.nb.errors import BatchRefused, ReconcileError
from vegd.nb.index import Owner
from vegd.nb.oneshot import OneShotNbClient
from vegd.nb.sync import Changes
from vegd.plan.gateway import OWNER_KEY as GATEWAY_KEY
from vegd.plan.gateway import plan_gateway
from vegd.plan.rows import Desired, Members
from vegd.plan.settings import PlanSettings
from vegd.plan.vpc import OWNER_KEY as VPC_KEY
from vegd.plan.vpc import plan_vpc

MAX_MOVE_ROUNDS = 4  # owners pulled into a batch for moved rows, transitively


@dataclass
class Validation:
    resolved: dict[str, ResolvedGateway] = field(default_factory=dict)
    errors: list[ValidationError] = field(default_factory=list)


@dataclass
class Written:
    """What one batch did: changes per owner (str(owner)), and the owners refused, with why."""

    changes: dict[str, Changes] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)


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


def missing_routers(nb: NbClient | OneShotNbClient, plans: list[Desired]) -> list[str]:
    """Owners whose router is not in NB; checked before any write."""
    routers = nb.router_names()
    return [f"{p.owner}: logical router {r} does not exist in the Northbound database"
            for p in plans if p.rows for r in p.owner.routers if r not in routers]


def owners_to_keep(snap: Snapshot) -> set[Owner]:
    keep = {(GATEWAY_KEY, g.key) for g in snap.gateways}
    keep |= {(VPC_KEY, v.name) for v in snap.all_vpcs()}
    return keep


def write_split(nb: NbClient, plans: list[Desired],
                plan_owner: Callable[[Owner], Desired | None],
                keep: set[Owner] | None = None, members: tuple[Members, ...] = ()) -> Written:
    """Write `plans` (and `members`, address sets changed by mutation) in one transaction;
    owners refused are left out and the rest written (one more diff, still one transaction);
    an owner refused for a row another owner of ours holds is retried with that owner's own
    plan in the same transaction. Members whose set is not in NB are refused."""
    out = Written()
    batch = {str(p.owner): p for p in plans}
    for _ in range(len(plans) + MAX_MOVE_ROUNDS + 1):
        if not batch and keep is None and not members:
            return out
        try:
            changes = nb.write(list(batch.values()), keep, members=members)
            out.changes.update(changes)
            out.refused.update({o: c.refused for o, c in changes.items() if c.refused})
            return out
        except BatchRefused as exc:
            pulled = False
            for owner, why in exc.refused.items():
                holder = exc.moves.get(owner)
                if holder is not None and f"{holder[0]}={holder[1]}" not in batch:
                    extra = plan_owner(holder)
                    if extra is not None:
                        batch[str(extra.owner)] = extra
                        pulled = True
                        continue
                out.refused[owner] = why
                batch.pop(owner, None)
            if not pulled and not exc.refused:
                raise
        except ReconcileError as exc:  # refused by the server as a whole: find who, by halves
            if len(batch) + bool(members) <= 1:
                out.refused.update({owner: str(exc) for owner in batch})
                out.refused.update({str(m.owner): str(exc) for m in members})
                return out
            items = list(batch.values())
            halves = [(items, ()), ([], members)] if members else \
                [(items[:len(items) // 2], ()), (items[len(items) // 2:], ())]
            for half, with_members in halves:
                part = write_split(nb, half, plan_owner, members=with_members)
                out.changes.update(part.changes)
                out.refused.update(part.refused)
            if keep is not None:
                part = write_split(nb, [], plan_owner, keep)
                out.changes.update(part.changes)
            return out
    return out


__all__ = ["Validation", "Written", "missing_routers", "owners_to_keep", "plan_all", "validate",
           "write_split"]
