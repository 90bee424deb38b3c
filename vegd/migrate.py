"""`vegd migrate -f DIR`: move gateways from another controller's NB rows (Kube-OVN's, vendor
`kube-ovn`) to vegd's, so that at every moment each source has a working path; `--back` undoes
it. Dry run unless `--apply`. docs/migration.md is the operator's guide.

DIR holds the gateways as Kube-OVN runs them and what they refer to (the manifests `vegd apply`
reads). Exit codes as `vegd apply`: 0 done (or planned); 1 refused, nothing written; 2 a database
cannot be reached or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vegd import logs
from vegd.config import ConfigError, load_settings
from vegd.exits import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE
from vegd.model.errors import InvalidObjects, ValidationError
from vegd.model.objects import Snapshot
from vegd.model.resolve import resolve_gateway
from vegd.nb import migrate as nbm
from vegd.nb.client import NbClient, SbClient
from vegd.nb.errors import NbUnavailable, ReconcileError
from vegd.nb.remote import SslFiles
from vegd.plan.gateway import gateway_owner, plan_gateway
from vegd.plan.names import bfd_port
from vegd.plan.rows import Bfd, Desired
from vegd.plan.settings import PlanSettings
from vegd.plan.vpc import plan_vpc, vpc_owner
from vegd.source.yamldir import SourceError, load_snapshot, read_manifests
from vegd.workload.status import MIGRATED_FROM

Step = Callable[[str], None]  # called after each transaction (tests trace there)


@dataclass
class GatewayMove:
    key: str
    router: str
    vpc: str
    saved: nbm.SavedRows
    desired: Desired
    vpc_desired: Desired | None  # BFD gateways: the VPC's BFD port rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filename", required=True, dest="directory",
                   help="manifests of the gateways as the other controller runs them")
    p.add_argument("gateways", nargs="*", metavar="NS/NAME",
                   help="only these gateways (default: every gateway in the manifests)")
    p.add_argument("--apply", action="store_true", help="do it (default: print the plan)")
    p.add_argument("--back", action="store_true",
                   help="restore the rows saved in --state and remove vegd's")
    p.add_argument("--state", required=True,
                   help="JSON file: written before the first change, read by --back")
    p.add_argument("--keep-old", action="store_true",
                   help="leave the other controller's rows in place (default: remove them)")
    p.add_argument("--bfd-wait", type=float, default=30.0,
                   help="seconds to wait for vegd's BFD sessions to come up before the old rows "
                        "go (default 30; not up in time: the old rows stay, exit 1)")
    p.add_argument("--objects-out", default=None, metavar="DIR",
                   help="write vegd's twin of each migrated gateway there (kubectl apply it)")
    p.add_argument("--group", default="vegd.io",
                   help="API group of the twins (vegd's [kubernetes] api_group)")
    p.add_argument("--from-vendor", default="kube-ovn",
                   help="external_ids:vendor of the other controller's rows")
    p.add_argument("--nb-connection", default=None)
    p.add_argument("--sb-connection", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--vendor", default=None)
    p.add_argument("--bfd-port-mode", choices=("stock", "kube-ovn"), default=None)
    p.add_argument("--timeout", type=float, default=None)


def run_migrate(args: argparse.Namespace, on_step: Step | None = None) -> int:
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
    except (SourceError, InvalidObjects) as exc:
        return _fail(EXIT_INVALID, str(exc))
    ssl = SslFiles(settings.ssl_private_key, settings.ssl_certificate, settings.ssl_ca_cert)
    try:
        nb = NbClient(settings.nb_connection, settings.timeout, ssl, vendor=settings.vendor)
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
            return _back(nb, args, settings.vendor, snap, step)
        try:
            moves = _plan(nb, snap, args, plan)
        except ValidationError as exc:
            return _fail(EXIT_INVALID, str(exc))
        _print_plan(moves, args)
        if not args.apply:
            print("dry run: nothing written (add --apply)")
            return EXIT_OK
        Path(args.state).write_text(json.dumps(
            {"vendor": args.from_vendor, "gateways": [
                {"key": m.key, "router": m.router, "vpc": m.vpc,
                 "rows": [r.as_dict() for r in m.saved.rows]} for m in moves]}, indent=1))
        for m in moves:
            if not _forward(nb, m, settings.vendor, args.keep_old, args.bfd_wait, step):
                return _fail(EXIT_INVALID, f"{m.key}: vegd's BFD sessions are not up after "
                             f"{args.bfd_wait:g} s; both controllers' rows are in place (a "
                             "working path); run again, or --back")
        print(f"migrated {len(moves)} gateway(s); saved the old rows in {args.state}")
        if args.objects_out:
            out = write_twins(args.directory, [m.key for m in moves], args.group,
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
            raise ValidationError(f"VpcEgressGateway {key}", "metadata", "is not in the manifests")
        if gw.selectors:
            raise ValidationError(gw.ref, "spec.selectors", "gateways with selectors are not "
                                  "migrated yet: vegd's address set VEG.<h>_ip4 and the other "
                                  "controller's port group VEG.<h> would share a Southbound name")
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


TWIN_PREFIX = "vegd-"  # the twin's Deployment must not take the other one's name


def twin(raw: Mapping[str, Any], group: str) -> dict[str, Any]:
    """vegd's object for a gateway the other controller ran: the same name and spec in vegd's
    group, its Deployment prefixed so both workloads can run side by side."""
    meta = raw.get("metadata") or {}
    spec = copy.deepcopy(raw.get("spec") or {})
    spec["prefix"] = TWIN_PREFIX + str(spec.get("prefix") or "")
    version = str(raw.get("apiVersion") or "kubeovn.io/v1")
    return {"apiVersion": f"{group}/{version.rpartition('/')[2]}", "kind": "VpcEgressGateway",
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace") or "default",
                         "labels": dict(meta.get("labels") or {}),
                         "annotations": {MIGRATED_FROM: f"{version} {meta.get('namespace')}/"
                                                        f"{meta.get('name')}"}},
            "spec": spec}


def write_twins(directory: str, keys: list[str], group: str, out: Path) -> Path:
    objs = [twin(obj, group) for _, obj in read_manifests(directory)
            if obj.get("kind") == "VpcEgressGateway" and
            f"{(obj.get('metadata') or {}).get('namespace') or 'default'}/"
            f"{(obj.get('metadata') or {}).get('name')}" in keys]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "vpc-egress-gateways.yaml"
    path.write_text("".join("---\n" + json.dumps(o, indent=2) + "\n" for o in objs))
    return path


def _print_plan(moves: list[GatewayMove], args: argparse.Namespace) -> None:
    for m in moves:
        found = ", ".join(f"{n} {t}" for t, n in sorted(m.saved.count().items()))
        adopt = sum(r.adopted for r in m.saved.rows)
        print(f"{m.key}: rows of vendor {args.from_vendor}: {found}")
        print(f"  1. adopt {adopt} (BFD sessions" + (", the VPC's BFD port)" if m.vpc_desired
                                                    else ")"))
        mine: dict[str, int] = {}
        for row in m.desired.rows + (m.vpc_desired.rows if m.vpc_desired else ()):
            mine[row.table] = mine.get(row.table, 0) + 1
        print(f"  2. write vegd's rows: {', '.join(f'{n} {t}' for t, n in sorted(mine.items()))}")
        rest = len(m.saved.rows) - adopt
        print(f"  3. {'keep' if args.keep_old else 'remove'} the other {rest} row(s)")


def _forward(nb: NbClient, m: GatewayMove, vendor: str, keep_old: bool, bfd_wait: float,
             step: Step) -> bool:
    gw_ids = {"vendor": vendor, "vpc-egress-gateway": m.key}
    nbm.commit(nb.api, nbm.Adopt(nb.api, m.saved, gw_ids, {"vendor": vendor, "vpc": m.vpc}))
    step("adopted")
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


def _sessions_up(nb: NbClient, key: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        status = nb.bfd_status("vpc-egress-gateway", key)
        if status and set(status.values()) == {"up"}:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def _back(nb: NbClient, args: argparse.Namespace, vendor: str, snap: Snapshot,
          step: Step) -> int:
    try:
        state = json.loads(Path(args.state).read_text())
    except (OSError, ValueError) as exc:
        return _fail(EXIT_INVALID, f"--state {args.state}: {exc}")
    for g in state["gateways"]:
        if args.gateways and g["key"] not in args.gateways:
            continue
        saved = nbm.SavedRows(g["key"], state["vendor"],
                              [nbm.SavedRow.from_dict(r) for r in g["rows"]])
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
