"""`vegd apply -f DIR`: one reconcile of NB from a directory of manifests.

Exit codes: 0 done; 1 the input is invalid (nothing was written); 2 a database could not be
reached or the arguments are wrong. Every check that can refuse the input runs before the
first write.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from typing import Any

from vegd import engine, logs
from vegd.cli import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE
from vegd.config import ConfigError, load_settings
from vegd.model.errors import InvalidObjects
from vegd.nb.client import NbClient, SbClient
from vegd.nb.errors import NbUnavailable
from vegd.nb.remote import SslFiles
from vegd.plan.settings import PlanSettings
from vegd.source.yamldir import SourceError, load_snapshot
from vegd.workload.advice import bfd_timer_advice


def run_apply(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, nb_connection=args.nb_connection,
                                 sb_connection=args.sb_connection, vendor=args.vendor,
                                 bfd_port_mode=args.bfd_port_mode, timeout=args.timeout)
    except ConfigError as exc:
        return _fail(EXIT_UNAVAILABLE, f"configuration: {exc}")
    logs.configure(settings.log_format, settings.log_level)
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
    if checked.errors:
        return _fail(EXIT_INVALID, "\n".join(str(e) for e in checked.errors))

    ssl = SslFiles(settings.ssl_private_key, settings.ssl_certificate, settings.ssl_ca_cert)
    try:
        nb = NbClient(settings.nb_connection, settings.timeout, ssl)
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
            snap = replace(snap, chassis_by_hostname=tuple(sorted(chassis.items())), _index={})
        plan_settings = PlanSettings(settings.vendor, settings.bfd_port_mode,  # type: ignore[arg-type]
                                     nb.capabilities.policy_bfd_sessions)
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
        missing = engine.missing_routers(nb, plans)
        if missing:
            return _fail(EXIT_INVALID, "\n".join(missing))
        results = engine.write(nb, plans, settings.vendor)
        if args.prune:
            garbage = engine.OwnerResult("garbage")
            garbage.changes = nb.collect_garbage(settings.vendor, engine.owners_to_keep(snap))
            results.append(garbage)
        _report(results, nb.transactions, args.output)
        return EXIT_INVALID if any(r.error for r in results) else EXIT_OK
    finally:
        nb.close()


def _fail(code: int, message: str) -> int:
    print(f"vegd apply: {message}", file=sys.stderr)
    return code


def _report(results: list[engine.OwnerResult], transactions: int, output: str) -> None:
    if output == "json":
        doc: dict[str, Any] = {"transactions": transactions, "owners": [
            {"owner": r.owner, **r.changes.as_dict(), "error": r.error,
             "seconds": round(r.seconds, 4)} for r in results]}
        print(json.dumps(doc, indent=2))
        return
    for r in results:
        c = r.changes
        if r.owner == "garbage" and not c.total:
            continue
        print(f"{r.owner}: created {len(c.created)}, updated {len(c.updated)}, "
              f"deleted {len(c.deleted)}" + (f" - ERROR: {r.error}" if r.error else ""))
        for sign, items in (("+", c.created), ("~", c.updated), ("-", c.deleted)):
            for item in items:
                print(f"  {sign} {item}")
    print(f"{transactions} transaction(s)")
