"""`vegd gateway run`: apply the network setup, supervise bfdd, serve HTTP, clean up on exit."""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from prometheus_client import REGISTRY, CollectorRegistry
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from vegd import probes
from vegd.gateway import netsetup, records
from vegd.gateway.bfdd import Bfdd, BfddError, Peer, Timers
from vegd.gateway.metrics import GatewayCollector, Status
from vegd.gateway.observer import Observer
from vegd.gateway.settings import Settings

log = logging.getLogger(__name__)


def bfd_peers(plan: netsetup.Plan) -> list[Peer]:
    """Each BFD peer, peered from the internal address of its family (single hop, TTL 255)."""
    peers = []
    for address in plan.settings.bfd_peers:
        family = plan.family(address.version)
        assert family is not None  # settings.parse checked the family has gateways
        peers.append(Peer(address, family.internal_ip))
    return peers


def run(settings: Settings, plan: netsetup.Plan,
        registry: CollectorRegistry = REGISTRY) -> int:
    """Main loop; the network setup has already been applied by the caller. The agent's
    metrics go on the process's registry, next to the process and Python collectors."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tick = min(settings.bfd_poll_interval, settings.check_interval, 1.0)
    peers = bfd_peers(plan)
    status = Status(nft_table=settings.nft_table, liveness_timeout=max(10.0, 10 * tick),
                    interfaces={"internal": settings.internal_interface,
                                "external": settings.external_interface},
                    expected_peers=[(str(p.peer), str(p.local)) for p in peers],
                    ready=True, ready_reason="", setup_applies=1)
    collector = GatewayCollector(status)
    registry.register(collector)
    # spec.observability: its metrics live in the observer's own registry, served through ours
    observer = Observer(None, records.Identity(
        settings.pod_namespace, "", settings.pod_name, settings.node_name),
        settings.observability_config, settings.state_dir, rcvbuf=settings.conntrack_buffer)
    registry.register(observer.collector)
    bfdd = None
    if peers:
        bfdd = Bfdd(settings.state_dir / "frr", peers,
                    Timers(settings.bfd_min_tx, settings.bfd_min_rx, settings.bfd_multiplier),
                    settings.frr_bin_dir, settings.vtysh)
    next_check = time.monotonic() + settings.check_interval
    next_poll = 0.0
    next_reload = 0.0
    code = 0
    server = None
    try:
        server = probes.serve(*settings.listen, registry, status.live, status.readiness,
                              name="http")
        observer.start()
        if bfdd is not None:
            bfdd.start()
        with netsetup.iproute() as ipr:
            while not stop.is_set():
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + settings.check_interval
                    _repair(plan, ipr, status)
                if now >= next_reload:
                    next_reload = now + observer.reload_interval
                    observer.tick()
                if bfdd is not None and now >= next_poll:
                    next_poll = now + settings.bfd_poll_interval
                    bfdd.supervise()
                    sessions = bfdd.sessions()
                    if sessions is not None:
                        bfdd.ensure_config(sessions)
                    with status.lock:
                        status.update_sessions(sessions)
                        status.bfdd_pid = bfdd.pid
                        status.bfdd_restarts = bfdd.restarts
                        status.bfd_config_applies = bfdd.config_applies
                with status.lock:
                    status.heartbeat = time.monotonic()
                stop.wait(tick)
    except (OSError, BfddError) as exc:  # HTTP port taken, bfdd cannot start...
        log.error("cannot run: %s", exc)
        code = 2
    finally:
        with status.lock:
            status.ready, status.ready_reason = False, "stopping"
        if bfdd is not None:
            bfdd.stop()
        observer.stop()
        probes.stop(server)
        registry.unregister(collector)
        registry.unregister(observer.collector)
        if not settings.keep_on_exit:
            with netsetup.iproute() as ipr:
                netsetup.teardown(settings, ipr)
    return code


def _repair(plan: netsetup.Plan, ipr: IPRoute, status: Status) -> None:
    """Re-apply the setup when something (or someone) changed it; readiness follows the result."""
    problems = netsetup.check(plan, ipr)
    if not problems:
        with status.lock:
            status.ready, status.ready_reason = True, ""
        return
    log.warning("network setup drifted (%s); re-applying", "; ".join(problems))
    try:
        netsetup.apply(plan, ipr)
        problems = netsetup.check(plan, ipr)
    except Exception as exc:  # keep running: report not ready and retry on the next check
        problems = [f"re-apply failed: {exc}"]
        log.error("re-applying the network setup failed: %s", exc)
    with status.lock:
        status.setup_applies += 1
        status.ready = not problems
        status.ready_reason = "; ".join(problems)
