"""`vegd migrate [-f DIR]`: move gateways from another controller's NB rows (Kube-OVN's, vendor
`kube-ovn`) to vegd's, so that at every moment each source has a working path; `--back` undoes
it. Dry run unless `--apply`. docs/migration.md is the operator's guide.

The gateways as Kube-OVN runs them and what they refer to come from DIR (the manifests `vegd
apply` reads) or, without -f, from the API server (migrate_source.py); from the cluster, --apply
also creates vegd's twins there and --back deletes them (migrate_twins.py). Exit codes as `vegd
apply`: 0 done (or planned); 1 refused, nothing written; 2 a database or the API server cannot be
reached or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vegd import logs
from vegd.config import ConfigError, Settings, load_settings
from vegd.exits import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE
from vegd.kube.api import KubeApi, KubeError, load_configuration
from vegd.migrate_source import Source, SourceFailed, load_source
from vegd.migrate_twins import ClusterTwins, write_twins
from vegd.model.errors import ValidationError
from vegd.model.objects import Snapshot
from vegd.model.resolve import resolve_gateway
from vegd.nb import migrate as nbm
from vegd.nb.client import NbClient, SbClient
from vegd.nb.errors import NbUnavailable, ReconcileError
from vegd.nb.remote import SslFiles
from vegd.plan.gateway import gateway_owner, plan_gateway
from vegd.plan.names import bfd_port
from vegd.plan.rows import AddressSet, Bfd, Desired
from vegd.plan.settings import PlanSettings
from vegd.plan.vpc import plan_vpc, vpc_owner

Step = Callable[[str], None]  # called after each transaction (tests trace there)


@dataclass
class GatewayMove:
    key: str
    router: str
    vpc: str
    saved: nbm.SavedRows
    desired: Desired
    vpc_desired: Desired | None  # BFD gateways: the VPC's BFD port rows


def run_migrate(args: argparse.Namespace, on_step: Step | None = None) -> int:
    try:
        settings = load_settings(args.config, nb_connection=args.nb_connection,
                                 sb_connection=args.sb_connection, vendor=args.vendor,
                                 bfd_port_mode=args.bfd_port_mode, timeout=args.timeout,
                                 kubeconfig=args.kubeconfig)
    except ConfigError as exc:
        return _fail(EXIT_UNAVAILABLE, f"configuration: {exc}")
    logs.configure(settings.log_format, settings.log_level, one_shot=True)
    if not settings.nb_connection:
        return _fail(EXIT_UNAVAILABLE, "no NB connection: give --nb-connection or set OVN_NB_DB")
    try:
        source = load_source(args.directory, settings.kubeconfig, args.gateways)
    except SourceFailed as exc:
        return _fail(exc.code, str(exc))
    try:
        return _migrate(args, settings, source, on_step)
    except SourceFailed as exc:
        return _fail(exc.code, str(exc))
    except KubeError as exc:
        return _fail(EXIT_UNAVAILABLE, f"kubernetes: {exc}")
    finally:
        source.close()


def _migrate(args: argparse.Namespace, settings: Settings, source: Source,
             on_step: Step | None) -> int:
    snap = source.snap
    ssl = SslFiles(settings.ssl_private_key, settings.ssl_certificate, settings.ssl_ca_cert)
    try:
        nb = NbClient(settings.nb_connection, settings.timeout, ssl, vendor=settings.vendor,
                      extra_tables=nbm.EXTRA_TABLES)
        if settings.sb_connection:
            sb = SbClient(settings.sb_connection, settings.timeout, ssl)
            try:
                chassis = sb.chassis_by_hostname()
            finally:
                sb.close()
            snap = replace(snap, chassis_by_hostname=tuple(sorted(chassis.items())))
    except (NbUnavailable, ValueError) as exc:
        return _fail(EXIT_UNAVAILABLE, f"OVN databases: {exc}")
    step = on_step or (lambda _name: None)
    try:
        plan = PlanSettings(settings.vendor, settings.bfd_port_mode,  # type: ignore[arg-type]
                            nb.capabilities.policy_bfd_sessions)
        if args.back:
            return _back(nb, args, settings, source, step)
        try:
            moves = _plan(nb, snap, args, plan)
        except ValidationError as exc:
            return _fail(EXIT_INVALID, str(exc))
        twins = ClusterTwins(source.kube, args.group) if source.kube else None
        todo = twins.check({m.key: source.gateways[m.key] for m in moves}) if twins else {}
        _print_plan(moves, args, todo)
        if not args.apply:
            print("dry run: nothing written (add --apply)")
            return EXIT_OK
        state = {"vendor": args.from_vendor, "gateways": [
            {"key": m.key, "router": m.router, "vpc": m.vpc,
             "rows": [r.as_dict() for r in m.saved.rows]} for m in moves], "twins": []}
        Path(args.state).write_text(json.dumps(state, indent=1))
        for m in moves:
            if not _forward(nb, m, settings.vendor, args.keep_old, args.bfd_wait, step):
                return _fail(EXIT_INVALID, f"{m.key}: vegd's BFD sessions are not up after "
                             f"{args.bfd_wait:g} s; both controllers' rows are in place (a "
                             "working path); run again, or --back")
        print(f"migrated {len(moves)} gateway(s); saved the old rows in {args.state}")
        if twins is not None:
            for key in (k for k, create in todo.items() if create):
                state["twins"].append(twins.create(source.gateways[key]))
                Path(args.state).write_text(json.dumps(state, indent=1))
                print(f"{key}: created vegd's twin in {args.group}")
        if args.objects_out:
            out = write_twins([source.gateways[m.key] for m in moves], args.group,
                              Path(args.objects_out))
            print(f"wrote vegd's objects to {out}: kubectl apply -f {out}")
        return EXIT_OK
    except ReconcileError as exc:
        return _fail(EXIT_INVALID, str(exc))
    finally:
        nb.close()


def _plan(nb: NbClient, snap: Snapshot, args: argparse.Namespace, plan: PlanSettings
          ) -> list[GatewayMove]:
    """Every check before the first write: which gateways, valid for vegd, rows found."""
    wanted = args.gateways or sorted(g.key for g in snap.gateways)
    moves = []
    for key in wanted:
        gw = snap.gateway(key)
        if gw is None:
            raise ValidationError(f"VpcEgressGateway {key}", "metadata",
                                  "is not in the source (manifests or cluster)")
        resolved = resolve_gateway(gw, snap, plan.policy_bfd_sessions, plan.bfd_port_mode)
        port = bfd_port(resolved.vpc.name) if gw.bfd.enabled else ""
        saved = nbm.read_foreign(nb.api, args.from_vendor, key, port)
        if not any(r.table != "Logical_Router_Port" for r in saved.rows):
            print(f"{key}: no rows of vendor {args.from_vendor}: nothing to migrate")
            continue
        vpc_desired = plan_vpc(resolved.vpc, snap, plan) if port else None
        moves.append(GatewayMove(key, resolved.vpc.router_name, resolved.vpc.name, saved,
                                 plan_gateway(resolved, snap, plan), vpc_desired))
    return moves


def _print_plan(moves: list[GatewayMove], args: argparse.Namespace, todo: dict[str, bool]
                ) -> None:
    for m in moves:
        found = ", ".join(f"{n} {t}" for t, n in sorted(m.saved.count().items()))
        adopt = sum(r.adopted for r in m.saved.rows)
        print(f"{m.key}: rows of vendor {args.from_vendor}: {found}")
        print(f"  1. adopt {adopt} (BFD sessions" + (", the VPC's BFD port)" if m.vpc_desired
                                                    else ")"))
        mine: dict[str, int] = {}
        for row in m.desired.rows + (m.vpc_desired.rows if m.vpc_desired else ()):
            mine[row.table] = mine.get(row.table, 0) + 1
        swap = _selector_sets(m)
        if swap:
            groups = ", ".join(str(r.columns.get("name")) for r in m.saved.rows
                               if r.table == "Port_Group")
            print(f"  1b. replace Port_Group {groups} by vegd's address set(s) "
                  f"{', '.join(str(c['name']) for c in swap)} (one transaction)")
        print(f"  2. write vegd's rows: {', '.join(f'{n} {t}' for t, n in sorted(mine.items()))}")
        rest = len(m.saved.rows) - adopt
        print(f"  3. {'keep' if args.keep_old else 'remove'} the other {rest} row(s)")
        if m.key in todo:
            print(f"  4. {'create' if todo[m.key] else 'keep'} vegd's twin in {args.group}")


def _forward(nb: NbClient, m: GatewayMove, vendor: str, keep_old: bool, bfd_wait: float,
             step: Step) -> bool:
    gw_ids = {"vendor": vendor, "vpc-egress-gateway": m.key}
    nbm.commit(nb.api, nbm.Adopt(nb.api, m.saved, gw_ids, {"vendor": vendor, "vpc": m.vpc}))
    step("adopted")
    swap = _selector_sets(m)
    if swap:
        nbm.commit(nb.api, nbm.SwapSelectorSets(nb.api, m.saved, swap))
        step("swapped")
    if m.vpc_desired is not None:
        nb.reconcile(m.vpc_desired)
    nb.reconcile(m.desired)
    step("written")
    # vegd's BFD routes carry traffic only once their sessions are up (a new BFD arrangement
    # of the port can take a few seconds): until then the old rows must stay.
    if m.desired.of(Bfd) and not _sessions_up(nb, m.key, bfd_wait):
        return False
    if not keep_old:
        nbm.commit(nb.api, nbm.RemoveForeign(nb.api, m.saved))
        step("removed")
    print(f"{m.key}: migrated")
    return True


def _selector_sets(m: GatewayMove) -> list[dict[str, Any]]:
    """vegd's address sets that take the Southbound names of the other controller's Port_Group
    (policy mode with selectors; route mode writes none and the group goes in step 3)."""
    names = nbm.selector_set_names(m.saved)
    return [r.columns() for r in m.desired.rows if isinstance(r, AddressSet) and r.name in names]


def _sessions_up(nb: NbClient, key: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        status = nb.bfd_status("vpc-egress-gateway", key)
        if status and set(status.values()) == {"up"}:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _back(nb: NbClient, args: argparse.Namespace, settings: Settings, source: Source,
          step: Step) -> int:
    snap = source.snap
    try:
        state = json.loads(Path(args.state).read_text())
    except (OSError, ValueError) as exc:
        return _fail(EXIT_INVALID, f"--state {args.state}: {exc}")
    wanted = [g for g in state["gateways"] if not args.gateways or g["key"] in args.gateways]
    saved_rows = {g["key"]: nbm.SavedRows(g["key"], state["vendor"],
                                          [nbm.SavedRow.from_dict(r) for r in g["rows"]])
                  for g in wanted}
    made = [t for t in state.get("twins") or [] if not args.gateways
            or f"{t['namespace']}/{t['name']}" in args.gateways]
    if made:
        # A running vegd removes the twins' rows when they go, and repairs any change to them
        # before: first the other controller's rows beside vegd's, then the twins deleted
        # (waiting for vegd's finalizer), then the rest restored (docs/migration.md).
        for g in wanted:
            nbm.commit(nb.api, nbm.RestoreBeside(nb.api, saved_rows[g["key"]]))
            g["rows"] = [r.as_dict() for r in saved_rows[g["key"]].rows]  # the new UUIDs
            Path(args.state).write_text(json.dumps(state, indent=1))
            step("beside")
        kube = source.kube or KubeApi(load_configuration(settings.kubeconfig))
        try:
            twins = ClusterTwins(kube, args.group)
            for t in made:
                if not twins.remove(t, args.delete_wait):
                    return _fail(EXIT_INVALID, f"vegd's twin {t['namespace']}/{t['name']} is "
                                 f"still there after {args.delete_wait:g} s (is vegd running to "
                                 "remove its finalizer?): the other controller's rows are back "
                                 "beside vegd's; run again")
                print(f"{t['namespace']}/{t['name']}: deleted vegd's twin in {t['group']}")
                step("twin deleted")
        finally:
            if kube is not source.kube:
                kube.close()
    for g in wanted:
        saved = saved_rows[g["key"]]
        nbm.commit(nb.api, nbm.Restore(nb.api, saved))
        step("restored")
        nb.reconcile(Desired(gateway_owner(g["key"], g["router"])))
        if any(r.table == "Logical_Router_Port" for r in saved.rows):
            others = [o for o in snap.gateways if o.vpc == g["vpc"] and o.key != g["key"]
                      and o.bfd.enabled]
            if not others:  # vegd's helpers of the port it gave back
                nb.reconcile(Desired(vpc_owner(g["vpc"])))
        step("removed")
        print(f"{g['key']}: restored {len(saved.rows)} row(s) of vendor {state['vendor']}")
    return EXIT_OK


def _fail(code: int, message: str) -> int:
    print(f"vegd migrate: {message}", file=sys.stderr)
    return code
