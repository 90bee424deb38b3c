"""`vegd apply -f DIR`: one reconcile of NB from a directory of manifests.

Exit codes: 0 done; 1 the input is invalid or refused by NB (nothing was written); 2 a database
could not be reached or went away (the one transaction is then either in NB whole or not at
all; a rerun converges), or the arguments are wrong. Every owner is written in ONE transaction.
With `--dry-run`: nothing is written; 0 nothing would change, 1 changes are pending.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from vegd import engine, heap, logs
from vegd.config import ConfigError, load_settings
from vegd.exits import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE
from vegd.model.errors import InvalidObjects
from vegd.nb.client import SbClient
from vegd.nb.errors import BatchRefused, NbUnavailable, ReconcileError
from vegd.nb.index import Owner
from vegd.nb.oneshot import OneShotNbClient
from vegd.nb.remote import SslFiles
from vegd.nb.sync import GARBAGE, Changes
from vegd.plan.rows import Desired
from vegd.plan.settings import PlanSettings
from vegd.source.yamldir import SourceError, load_snapshot
from vegd.workload.advice import bfd_timer_advice


def run_apply(args: argparse.Namespace) -> int:
    heap.STARTUP.begin()  # full collections wait for the whole pass (vegd/heap.py)
    try:
        return _run_apply(args)
    finally:
        heap.STARTUP.end(freeze=False)  # (in-process callers, tests: as they were)


def _run_apply(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, nb_connection=args.nb_connection,
                                 sb_connection=args.sb_connection, vendor=args.vendor,
                                 bfd_port_mode=args.bfd_port_mode, timeout=args.timeout)
    except ConfigError as exc:
        return _fail(EXIT_UNAVAILABLE, f"configuration: {exc}")
    logs.configure(settings.log_format, settings.log_level, one_shot=True)
    if not settings.nb_connection:
        return _fail(EXIT_UNAVAILABLE, "no NB connection: give --nb-connection or set OVN_NB_DB")

    try:
        snap = load_snapshot(args.directory)
    except SourceError as exc:
        return _fail(EXIT_INVALID, str(exc))
    except InvalidObjects as exc:
        return _fail(EXIT_INVALID, str(exc))
    # Spec checks first: a wrong manifest is reported even when NB is down.
    checked = engine.validate(snap, bfd_port_mode=settings.bfd_port_mode)
    checked_snap = snap
    if checked.errors:
        return _fail(EXIT_INVALID, "\n".join(str(e) for e in checked.errors))

    ssl = SslFiles(settings.ssl_private_key, settings.ssl_certificate, settings.ssl_ca_cert)
    try:
        nb = OneShotNbClient(settings.nb_connection, settings.timeout, ssl,
                             vendor=settings.vendor)
    except (NbUnavailable, ValueError) as exc:
        return _fail(EXIT_UNAVAILABLE, f"NB: {exc}")
    try:
        if settings.sb_connection:
            try:
                sb = SbClient(settings.sb_connection, settings.timeout, ssl)
            except (NbUnavailable, ValueError) as exc:
                return _fail(EXIT_UNAVAILABLE, f"SB: {exc}")
            try:
                chassis = sb.chassis_by_hostname()
            finally:
                sb.close()
            snap = replace(snap, chassis_by_hostname=tuple(sorted(chassis.items())))
        # The spec check above assumed bfd_sessions; it stands when NB has them and SB added
        # nothing to the snapshot.
        reuse = checked if snap is checked_snap and nb.capabilities.policy_bfd_sessions else None
        planned = _plan(args, settings, nb, snap, reuse)
        # The models are not needed by the write: freed before NB's rows are read (the read
        # happens at the first look at NB, engine.missing_routers), for peak RSS.
        del snap, checked, checked_snap, reuse
        if isinstance(planned, int):
            return planned
        return _write(args, nb, *planned)
    except NbUnavailable as exc:
        return _fail(EXIT_UNAVAILABLE, f"NB: {exc}; vegd writes one transaction, so NB has all "
                     "of it or none of it: run vegd apply again to converge")
    finally:
        nb.close()


def _plan(args: argparse.Namespace, settings: Any, nb: OneShotNbClient, snap: Any,
          checked: engine.Validation | None) -> int | tuple[list[Desired], set[Owner] | None]:
    """The plans and the owners to keep, or the exit code of a refusal."""
    plan_settings = PlanSettings(settings.vendor, settings.bfd_port_mode,
                                 nb.capabilities.policy_bfd_sessions)
    if checked is None:
        checked = engine.validate(snap, nb.capabilities.policy_bfd_sessions,
                                  settings.bfd_port_mode)
    if checked.errors:
        return _fail(EXIT_INVALID, "\n".join(str(e) for e in checked.errors))
    for key in sorted(checked.resolved):
        advice = bfd_timer_advice(checked.resolved[key].gateway,
                                  settings.bfd_port_mode == "stock")
        if advice:
            print(f"vegd apply: warning: VpcEgressGateway {key}: {advice}", file=sys.stderr)
    plans = engine.plan_all(snap, checked.resolved, plan_settings)
    return plans, (engine.owners_to_keep(snap) if args.prune else None)


def _write(args: argparse.Namespace, nb: OneShotNbClient, plans: list[Desired],
           keep: set[Owner] | None) -> int:
    missing = engine.missing_routers(nb, plans)
    if missing:
        return _fail(EXIT_INVALID, "\n".join(missing))
    try:
        changes = nb.write(plans, keep, dry_run=args.dry_run)
    except BatchRefused as exc:
        return _fail(EXIT_INVALID, "\n".join(f"{o}: {why}" for o, why in exc.refused.items())
                     + "\nnothing was written")
    except ReconcileError as exc:
        return _fail(EXIT_INVALID, f"{exc}; nothing was written")
    _report(changes, nb.transactions, args.output, args.dry_run)
    if args.dry_run:
        return EXIT_INVALID if any(c.total for c in changes.values()) else EXIT_OK
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    print(f"vegd apply: {message}", file=sys.stderr)
    return code


def _report(changes: dict[str, Changes], transactions: int, output: str, dry_run: bool) -> None:
    if output == "json":
        doc: dict[str, Any] = {"transactions": transactions, "dry_run": dry_run, "owners": [
            {"owner": owner, **c.as_dict(), "error": ""} for owner, c in changes.items()]}
        print(json.dumps(doc, indent=2))
        return
    for owner, c in changes.items():
        if owner == GARBAGE and not c.total:
            continue
        print(f"{owner}: created {len(c.created)}, "
              f"updated {len(c.updated)}, deleted {len(c.deleted)}")
        for sign, items in (("+", c.created), ("~", c.updated), ("-", c.deleted)):
            for item in items:
                print(f"  {sign} {item}")
    if dry_run:
        print("dry run: nothing was written")
    else:
        print(f"{transactions} transaction(s)")
