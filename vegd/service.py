"""systemd's notification protocol for `vegd run` (Type=notify): READY=1 once the controller can
serve, STATUS= lines as its state changes, WATCHDOG=1 from the main loop's heartbeat, STOPPING=1.

Without NOTIFY_SOCKET (not under systemd, in a pod) every call is a no-op. Ready means: caches
synced and the first full resync worked through (every owner reconciled once, then garbage
collection); a standby is ready once it knows another vegd holds the NB lock, since it would
otherwise never start. WATCHDOG=1 goes out every WatchdogSec/2 from the loop that also feeds
/livez, so a wedged main loop is restarted by systemd as it would be by the kubelet.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from cysystemd.daemon import Notification, notify


class ServiceNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None,
                 send: Callable[..., Any] = notify,
                 clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self._send, self._clock = send, clock
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        mine = not pid or (pid.isdigit() and int(pid) == os.getpid())
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and mine else 0.0
        self.ready = False
        self.status = ""
        self._last_watchdog = 0.0

    def tick(self, controller: Any) -> None:
        """Controller.on_tick: called on every turn of the main loop."""
        if not self.enabled:
            return
        ready, status = describe(controller)
        if status != self.status:
            self.status = status
            self._send(Notification.STATUS, status)
        if ready and not self.ready:
            self.ready = True
            self._send(Notification.READY)
        now = self._clock()
        if self.watchdog_interval and now - self._last_watchdog >= self.watchdog_interval:
            self._last_watchdog = now
            self._send(Notification.WATCHDOG)

    def stopping(self) -> None:
        if self.enabled:
            self._send(Notification.STATUS, "stopping")
            self._send(Notification.STOPPING)


def describe(controller: Any) -> tuple[bool, str]:
    """(ready, STATUS line) of a controller."""
    if not controller.cache.synced:
        return False, "waiting for the Kubernetes caches"
    nb = controller.ctx.nb
    if controller.stats.active:
        done = controller.stats.resyncs_completed
        if not done:
            return False, "active: first full resync running"
        return True, f"active: holds the NB lock {nb.lock or '(none)'}; {done} full resyncs"
    if nb.lock_contended:
        return True, f"standby: another vegd holds the NB lock {nb.lock}"
    return False, "waiting for the NB lock"
