"""vegd/service.py: what READY/STATUS/WATCHDOG say for each controller state."""

from __future__ import annotations

from types import SimpleNamespace

from vegd.service import ServiceNotifier, describe


def controller(synced=True, active=False, completed=0, contended=False):
    nb = SimpleNamespace(lock="vegd_vegd", lock_contended=contended)
    return SimpleNamespace(cache=SimpleNamespace(synced=synced), ctx=SimpleNamespace(nb=nb),
                           stats=SimpleNamespace(active=active, resyncs_completed=completed))


def test_ready_only_after_the_first_full_resync_or_as_a_known_standby():
    assert describe(controller(synced=False)) == (False, "waiting for the Kubernetes caches")
    assert describe(controller()) == (False, "waiting for the NB lock")
    assert describe(controller(active=True)) == (False, "active: first full resync running")
    assert describe(controller(active=True, completed=1))[0] is True
    ready, status = describe(controller(contended=True))
    assert ready and status.startswith("standby")


def test_notifier_sends_changes_once_and_paces_the_watchdog():
    sent, now = [], [0.0]
    n = ServiceNotifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "2000000"},
                        send=lambda *a: sent.append(tuple(getattr(x, "name", x) for x in a)),
                        clock=lambda: now[0] + 10)
    c = controller(active=True)
    n.tick(c)
    now[0] += 0.1
    n.tick(c)
    assert sent == [("STATUS", "active: first full resync running"), ("WATCHDOG",)]
    c.stats.resyncs_completed = 1
    now[0] += 1.0
    n.tick(c)
    assert sent[2:] == [("STATUS", "active: holds the NB lock vegd_vegd; 1 full resyncs"),
                        ("READY",), ("WATCHDOG",)]
    assert ServiceNotifier({}).enabled is False
