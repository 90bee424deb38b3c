"""`vegd run`: the controller against a Kubernetes cluster, until SIGTERM/SIGINT.

Exit codes: 0 stopped on a signal; 2 configuration, credentials or databases unusable at start.
After start, lost connections are retried forever (with backoff), never a reason to exit.
"""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

import structlog

from vegd import logs
from vegd.config import ConfigError, Settings, load_settings
from vegd.controller.health import serve
from vegd.controller.manager import Controller
from vegd.controller.reconciler import Context, Reconciler
from vegd.exits import EXIT_OK, EXIT_UNAVAILABLE
from vegd.kube.api import KubeApi, KubeError, load_configuration
from vegd.kube.cache import Cache
from vegd.kube.events import EventRecorder
from vegd.kube.resources import WATCHED, Resource
from vegd.nb.client import NbClient, SbClient, lock_name
from vegd.nb.errors import NbUnavailable
from vegd.nb.remote import SslFiles
from vegd.plan.settings import PlanSettings
from vegd.workload.deployment import WorkloadOptions

log = structlog.get_logger("vegd")


def run_controller(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, kubeconfig=args.kubeconfig,
                                 nb_connection=args.nb_connection,
                                 sb_connection=args.sb_connection, health_port=args.health_port)
    except ConfigError as exc:
        return _fail(f"configuration: {exc}")
    logs.configure(settings.log_format, settings.log_level)
    if not settings.nb_connection:
        return _fail("no NB connection: set [ovn] nb_connection, OVN_NB_DB or --nb-connection")
    try:
        kube = KubeApi(load_configuration(settings.kubeconfig))
    except KubeError as exc:
        return _fail(str(exc))
    ssl = SslFiles(settings.ssl_private_key, settings.ssl_certificate, settings.ssl_ca_cert)
    lock = lock_name(settings.vendor) if settings.leader_election else ""
    try:
        nb = NbClient(settings.nb_connection, settings.timeout, ssl, lock=lock,
                      vendor=settings.vendor)
        sb = SbClient(settings.sb_connection, settings.timeout, ssl) \
            if settings.sb_connection else None
    except (NbUnavailable, ValueError) as exc:
        return _fail(f"OVN databases: {exc}")
    controller = build_controller(settings, kube, nb, sb)
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        controller.request_stop()  # no joins in a signal handler: run() returns, then stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = serve(controller, "", settings.health_port) if settings.health_port else None
    log.info("vegd controller starting", nb=settings.nb_connection, lock=lock or "(none)",
             vendor=settings.vendor, bfd_port_mode=settings.bfd_port_mode)
    try:
        controller.run()
        log.info("stopping")
    finally:
        controller.stop()
        if server is not None:
            server.shutdown()
        nb.close()
        if sb is not None:
            sb.close()
        kube.close()
    return EXIT_OK


def build_controller(settings: Settings, kube: KubeApi, nb: NbClient, sb: SbClient | None,
                     resources: tuple[Resource, ...] = WATCHED) -> Controller:
    cache = Cache(kube, resources)
    plan = PlanSettings(settings.vendor, settings.bfd_port_mode,  # type: ignore[arg-type]
                        nb.capabilities.policy_bfd_sessions)
    ctx = Context(cache=cache, kube=kube, nb=nb, sb=sb, events=EventRecorder(kube),
                  vendor=settings.vendor, plan=plan,
                  workload=WorkloadOptions(image=settings.gateway_image,
                                           vendor=settings.vendor))
    return Controller(Reconciler(ctx), resync_period=settings.resync_period)


def _fail(message: str) -> int:
    print(f"vegd run: {message}", file=sys.stderr)
    return EXIT_UNAVAILABLE
