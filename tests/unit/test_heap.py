"""`vegd run`'s start-up window of the garbage collector (vegd/heap.py)."""

from __future__ import annotations

import gc

import pytest

from vegd.heap import NO_FULL_PASSES, StartupCollector


@pytest.fixture
def thresholds():
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)
    gc.unfreeze()


def test_full_collections_wait_until_ready_then_startup_is_frozen(thresholds):
    startup = StartupCollector(clock=lambda: 0.0)
    startup.begin()
    startup.begin()  # again while it lasts: the saved thresholds stay the original ones
    assert gc.get_threshold() == (thresholds[0], thresholds[1], NO_FULL_PASSES)
    assert not startup.tick(ready=False)
    assert startup.active
    kept = [[i] for i in range(1000)]  # survivors of start-up
    assert startup.tick(ready=True)
    assert not startup.active
    assert gc.get_threshold() == thresholds
    assert gc.get_freeze_count() >= len(kept)
    assert not startup.tick(ready=True)  # over once


def test_a_vegd_that_never_gets_ready_collects_as_usual_after_the_limit(thresholds):
    now = [0.0]
    startup = StartupCollector(clock=lambda: now[0], limit=600.0)
    startup.begin()
    now[0] = 599.0
    assert not startup.tick(ready=False)
    now[0] = 600.0
    assert startup.tick(ready=False)
    assert gc.get_threshold() == thresholds


def test_end_without_freeze_only_restores(thresholds):
    startup = StartupCollector()
    startup.begin()
    assert startup.end(freeze=False)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds
    assert not startup.end()  # nothing to end


def test_vegd_apply_defers_full_collections_for_its_whole_run():
    """`vegd apply` is one pass over a heap that lives until exit: full collections wait from
    the command line to the end of the pass (an apply that fails at NB included), and the
    thresholds are back when it returns (in-process callers, the tests)."""
    import subprocess
    import sys

    code = ("import gc, sys; seen = set(); "
            "gc.callbacks.append(lambda phase, info: seen.add(gc.get_threshold()[2])); "
            "from vegd import cli; "
            "cli.main(['apply', '-f', '/nonexistent', '--nb-connection', 'unix:/nonexistent']); "
            "print(sorted(seen), gc.get_threshold()[2], file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    seen, after = out.stderr.strip().splitlines()[-1].rsplit(" ", 1)
    assert str(NO_FULL_PASSES) in seen, out.stderr
    assert after == str(gc.get_threshold()[2]), out.stderr
