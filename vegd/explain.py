"""`vegd explain` and `vegd status`: read the cluster (or a manifest directory) and the NB replica,
let `vegd.plan.explain` answer, print text or JSON.

Exit codes: 0 answered; 1 the pod or address is not known / the manifests are invalid;
2 configuration, cluster or NB unusable.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from dataclasses import asdict
from typing import Any

from vegd.config import ConfigError, Settings, load_settings
from vegd.exits import EXIT_INVALID, EXIT_OK, EXIT_UNAVAILABLE
from vegd.kube.api import KubeApi, KubeError, load_configuration
from vegd.kube.resources import GATEWAYS, WATCHED
from vegd.model.errors import InvalidObjects, ValidationError
from vegd.model.objects import Snapshot
from vegd.model.snapshot import snapshot_from_objects
from vegd.nb.client import NbClient
from vegd.nb.errors import NbUnavailable
from vegd.nb.remote import SslFiles
from vegd.plan import explain as ex
from vegd.plan.gateway import OWNER_KEY
from vegd.plan.settings import PlanSettings
from vegd.source.yamldir import SourceError, load_snapshot


class _Failed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def run_explain(args: argparse.Namespace) -> int:
    try:
        return _explain(args)
    except _Failed as exc:
        print(f"vegd {args.command}: {exc}", file=sys.stderr)
        return exc.code


def _explain(args: argparse.Namespace) -> int:
    settings = _settings(args)
    snap, invalid = _snapshot(args, settings)
    nb = _nb(settings)
    try:
        plan = PlanSettings(settings.vendor, settings.bfd_port_mode,
                            nb.capabilities.policy_bfd_sessions)
        bfd = nb.bfd_status_by_owner(OWNER_KEY)
        if args.command == "status":
            counts = {owner: tables for (key, owner), tables in
                      nb.owned_row_counts().items() if key == OWNER_KEY}
            statuses = ex.gateway_statuses(snap, plan, bfd, counts, invalid)
            _print(args.output, [asdict(s) for s in statuses], _status_text(statuses))
            return EXIT_OK
        keys = nb.owned_keys(OWNER_KEY)
    finally:
        nb.close()
    source, asked = _source(args, snap)
    answer = ex.explain(source, snap, plan, bfd, keys, invalid, asked)
    _print(args.output, asdict(answer), _explain_text(answer))
    return EXIT_OK


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(args.config, nb_connection=args.nb_connection,
                                 kubeconfig=args.kubeconfig)
    except ConfigError as exc:
        raise _Failed(EXIT_UNAVAILABLE, f"configuration: {exc}") from None
    if not settings.nb_connection:
        raise _Failed(EXIT_UNAVAILABLE, "no NB connection: give --nb-connection or set "
                                        "OVN_NB_DB")
    return settings


def _snapshot(args: argparse.Namespace, settings: Settings) -> tuple[Snapshot, dict[str, str]]:
    """The objects, and the gateways that do not even parse (key -> why)."""
    if args.directory:
        try:
            return load_snapshot(args.directory), {}
        except SourceError as exc:
            raise _Failed(EXIT_INVALID, str(exc)) from None
        except InvalidObjects as exc:
            raise _Failed(EXIT_INVALID, str(exc)) from None
    try:
        kube = KubeApi(load_configuration(settings.kubeconfig))
    except KubeError as exc:
        raise _Failed(EXIT_UNAVAILABLE, str(exc)) from None
    try:
        objects = list(kube.list_all(WATCHED))
    except KubeError as exc:
        raise _Failed(EXIT_UNAVAILABLE, f"kubernetes: {exc}") from None
    finally:
        kube.close()
    errors: list[ValidationError] = []
    snap = snapshot_from_objects(objects, errors)
    prefix = f"{GATEWAYS.kind} "
    invalid = {e.obj.removeprefix(prefix): f"{e.field}: {e.message}" for e in errors
               if e.obj.startswith(prefix)}
    return snap, invalid


def _nb(settings: Settings) -> NbClient:
    ssl = SslFiles(settings.ssl_private_key, settings.ssl_certificate, settings.ssl_ca_cert)
    try:
        return NbClient(settings.nb_connection, settings.timeout, ssl)
    except (NbUnavailable, ValueError) as exc:
        raise _Failed(EXIT_UNAVAILABLE, f"NB: {exc}") from None


def _source(args: argparse.Namespace, snap: Snapshot) -> tuple[Any, str]:
    if args.ip:
        try:
            address = ipaddress.ip_address(args.ip)
        except ValueError:
            raise _Failed(EXIT_INVALID, f"--ip {args.ip!r} is not an IP address") from None
        return ex.address_source(address, snap)
    if len(args.target) != 2 or args.target[0] != "pod" or "/" not in args.target[1]:
        raise _Failed(EXIT_INVALID, "say which source: `vegd explain pod NAMESPACE/NAME` or "
                                    "`vegd explain --ip ADDRESS`")
    key = args.target[1]
    pod = next((p for p in snap.all_pods() if p.key == key), None)
    if pod is None:
        raise _Failed(EXIT_INVALID, f"pod {key} not found")
    if not pod.ips:
        raise _Failed(EXIT_INVALID, f"pod {key} has no IP yet")
    return pod, key


def _print(output: str, doc: Any, text: str) -> None:
    if output == "json":
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text)


def _explain_text(e: ex.Explanation) -> str:
    out = [f"{e.source} ({', '.join(e.ips)}) in VPC {e.vpc or '?'}", f"  {e.summary}", ""]
    for v in e.verdicts:
        head = f"{v.gateway}: {v.outcome}"
        if v.via:
            head += f" (by {v.via}, {v.mode})"
        out += [head, f"  why: {v.reason}"]
        for r in v.rows:
            prio = f" priority {r.priority}" if r.priority is not None else ""
            hops = f" -> {', '.join(r.nexthops)}" if r.nexthops else ""
            nb = "" if r.in_nb is None else ("  [in NB]" if r.in_nb else "  [MISSING in NB]")
            out.append(f"  row: {r.table}{prio} {r.action} match {r.match!r}{hops}{nb}")
        for h in v.nexthops:
            out.append(f"  nexthop {h.ip} ({h.pod} on {h.node or '?'}): BFD {h.bfd}, "
                       f"external {', '.join(h.external_ips) or '-'}")
        if v.egress_ips:
            out.append(f"  leaves as: {', '.join(v.egress_ips)}")
        out.append("")
    return "\n".join(out)


def _status_text(statuses: tuple[ex.GatewayStatus, ...]) -> str:
    out = []
    for s in statuses:
        state = "valid" if s.valid else "INVALID"
        out.append(f"{s.gateway} (VPC {s.vpc or '?'}): {state}"
                   + (", BFD on" if s.bfd else ", BFD off")
                   + (f": {s.problem}" if s.problem else ""))
        for h in s.nexthops:
            out.append(f"  instance {h.pod} on {h.node or '?'}: nexthop {h.ip}, BFD {h.bfd}, "
                       f"external {', '.join(h.external_ips) or '-'}")
        rows = ", ".join(f"{t} {n}" for t, n in sorted(s.rows.items())) or "none"
        out.append(f"  NB rows: {rows}")
    return "\n".join(out) + "\n"
