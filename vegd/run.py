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
from prometheus_client import REGISTRY

from vegd import heap, logs, probes
from vegd.config import OPTIONS, PULL_POLICIES, ConfigError, Settings, load_settings
from vegd.controller.manager import Controller
from vegd.controller.metrics import ControllerMetrics
from vegd.controller.reconciler import Context, Reconciler
from vegd.exits import EXIT_OK, EXIT_UNAVAILABLE
from vegd.kube.api import KubeApi, KubeError, load_configuration
from vegd.kube.cache import Cache
from vegd.kube.events import EventRecorder
from vegd.kube.resources import GATEWAYS, WATCHED, Resource, serve_gateways_in
from vegd.nb.client import NbClient, SbClient, lock_name
from vegd.nb.errors import NbUnavailable
from vegd.nb.remote import SslFiles
from vegd.plan.settings import PlanSettings
from vegd.service import ServiceNotifier, describe
from vegd.workload.deployment import WorkloadOptions

log = structlog.get_logger("vegd")


def run_controller(args: argparse.Namespace) -> int:
    heap.STARTUP.begin()  # full garbage collections wait until vegd is ready (vegd/heap.py)
    try:
        return _run_controller(args)
    finally:
        heap.STARTUP.end(freeze=False)


def _run_controller(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, **{o.name: getattr(args, o.name) for o in OPTIONS})
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
    # the informers list while NB's initial contents are read: both are mostly waiting for a
    # server, and neither needs the other until the first full pass
    serve_gateways_in(settings.api_group)
    cache = Cache(kube, WATCHED)
    cache.start()
    try:
        nb = NbClient(settings.nb_connection, settings.timeout, ssl, lock=lock,
                      vendor=settings.vendor)
        sb = SbClient(settings.sb_connection, settings.timeout, ssl) \
            if settings.sb_connection else None
    except (NbUnavailable, ValueError) as exc:
        cache.stop()
        kube.close()
        return _fail(f"OVN databases: {exc}")
    controller = build_controller(settings, kube, nb, sb, metrics=ControllerMetrics(REGISTRY),
                                  cache=cache)
    controller.tune_runtime = True  # a short GIL switch interval after the first pass
    notifier = ServiceNotifier()

    def on_tick(controller: Controller) -> None:
        notifier.tick(controller)
        if heap.STARTUP.active and heap.STARTUP.tick(describe(controller)[0]):
            log.info("start-up over: full garbage collections resumed")

    controller.on_tick = on_tick
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        controller.request_stop()  # no joins in a signal handler: run() returns, then stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server = probes.serve(settings.health_address, settings.health_port, REGISTRY,
                              *_checks(controller)) if settings.health_port else None
    except OSError as exc:
        controller.stop()
        return _fail(f"health_port {settings.health_port}: {exc}")
    log.info("vegd controller starting", nb=settings.nb_connection, lock=lock or "(none)",
             vendor=settings.vendor, bfd_port_mode=settings.bfd_port_mode,
             api_group=settings.api_group)
    try:
        controller.run()
        log.info("stopping")
    finally:
        notifier.stopping()
        controller.stop()
        probes.stop(server)
        nb.close()
        if sb is not None:
            sb.close()
        kube.close()
    return EXIT_OK


def build_controller(settings: Settings, kube: KubeApi, nb: NbClient, sb: SbClient | None,
                     resources: tuple[Resource, ...] = WATCHED,
                     metrics: ControllerMetrics | None = None,
                     cache: Cache | None = None) -> Controller:
    """The controller; `cache`, when given, was made (and may be started) for these
    resources in `settings.api_group`."""
    if cache is None:
        serve_gateways_in(settings.api_group)
        cache = Cache(kube, resources)
    plan = PlanSettings(settings.vendor, settings.bfd_port_mode,
                        nb.capabilities.policy_bfd_sessions)
    ctx = Context(cache=cache, kube=kube, nb=nb, sb=sb, events=EventRecorder(kube),
                  vendor=settings.vendor, plan=plan,
                  workload=workload_options(settings, GATEWAYS.api_version))
    return Controller(Reconciler(ctx), resync_period=settings.resync_period, metrics=metrics)


PULL_POLICY = {p.lower(): p for p in PULL_POLICIES}  # choices are compared lowercased


def workload_options(settings: Settings, api_version: str) -> WorkloadOptions:
    """The gateway Deployments' knobs from `[kubernetes] gateway_*`."""
    return WorkloadOptions(
        image=settings.gateway_image, vendor=settings.vendor, api_version=api_version,
        image_pull_policy=PULL_POLICY.get(settings.gateway_image_pull_policy, ""),
        resources={"requests": {"cpu": settings.gateway_cpu_request,
                                "memory": settings.gateway_memory_request},
                   "limits": {"memory": settings.gateway_memory_limit}},
        agent_port=settings.gateway_agent_port,
        agent_bandwidth=settings.gateway_agent_bandwidth,
        drain_seconds=settings.gateway_drain_seconds,
        termination_grace_period=settings.gateway_termination_grace_period)


def _checks(controller: Controller) -> tuple[probes.Check, probes.Check]:
    """Alive: the main loop turns and no reconcile is stuck. Ready: the caches are synced (a
    standby is ready too: it must be able to take over; `vegd_leader` tells which is active)."""
    def live() -> tuple[bool, str]:
        return controller.healthy, "main loop stalled or a reconcile stuck"

    def ready() -> tuple[bool, str]:
        return controller.cache.synced, "caches not synced"

    return live, ready


def _fail(message: str) -> int:
    print(f"vegd run: {message}", file=sys.stderr)
    return EXIT_UNAVAILABLE
