"""Python's cyclic garbage collector during `vegd run`'s start-up and the whole of `vegd apply`.

Start-up builds a heap of millions of container objects that all live on: imported modules, the
informer caches, the parsed models, the IDL's replica of NB. CPython runs a full collection each
time that long-lived heap has grown by a quarter, and each one walks all of it: at 1,000
gateways / 23,000 pods, 9-11 full passes took 1.4-1.9 s of a 6.6 s restart (timed with
`gc.callbacks`). So until vegd is ready only the young generations are collected (they find the
cycles that die young, which is what start-up's garbage is); then the survivors are moved out of
the collector's sight (`gc.freeze`: they are long-lived by construction, and later full passes
need not walk them again) and the thresholds are restored. See docs/decisions.md.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

NO_FULL_PASSES = 1_000_000  # young collections between full passes: never, in practice
LIMIT_SECONDS = 600.0  # a vegd that never gets ready (no NB lock, ...) collects as usual after


class StartupCollector:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 limit: float = LIMIT_SECONDS) -> None:
        self._clock, self._limit = clock, limit
        self._saved: tuple[int, int, int] | None = None
        self._since = 0.0

    @property
    def active(self) -> bool:
        return self._saved is not None

    def begin(self) -> None:
        """Defer full collections (again: a no-op while start-up lasts)."""
        if self._saved is not None:
            return
        self._saved = gc.get_threshold()
        self._since = self._clock()
        gc.set_threshold(self._saved[0], self._saved[1], NO_FULL_PASSES)

    def tick(self, ready: bool) -> bool:
        """From the main loop: start-up ends when vegd is ready, or after the limit. True
        when this call ended it."""
        if self._saved is None or not (ready or self._clock() - self._since >= self._limit):
            return False
        self.end()
        return True

    def end(self, freeze: bool = True) -> bool:
        """Restore the thresholds; with `freeze`, what start-up built (after a young
        collection) is never walked by a full collection again. False when it had ended.
        (No count of the frozen objects: `gc.get_freeze_count()` walks them, 0.17 s at
        1,000 gateways, a stall just when vegd has become ready.)"""
        if self._saved is None:
            return False
        saved, self._saved = self._saved, None
        if freeze:
            gc.collect(1)
            gc.freeze()
        gc.set_threshold(*saved)
        return True


STARTUP = StartupCollector()  # `vegd run`'s: begun by the command line before its imports
