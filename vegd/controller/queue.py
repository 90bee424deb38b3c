"""A deduplicating, rate-limited work queue (the shape of client-go's workqueue).

A key is in at most one of three places: waiting (queued once however often it is added),
processing (handed to a worker), or both processing and dirty (added again meanwhile: it is queued
again when the worker is done, so one key is never reconciled twice at the same time and no change
is lost). Failed keys come back after an exponential delay, capped; `forget` resets it.

A key added with `full=False` (a pod event that can only change a gateway's selected pods) stays
"members only" until it is taken, unless it is also added the ordinary way meanwhile: the worker
may then reconcile just the gateway's address-set members (`members_only`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque

from vegd.backoff import exponential


class WorkQueue:
    def __init__(self, base_delay: float = 0.05, max_delay: float = 30.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._waiting: set[str] = set()
        self._ready_since: dict[str, float] = {}  # waiting key -> when it became ready
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._failures: dict[str, int] = {}
        self._seq = itertools.count()
        self._shutdown = False
        self._full: set[str] = set()  # keys some add() since they were last taken wanted whole
        self._taken_full: set[str] = set()  # processing keys taken with that flag

    def add(self, key: str, full: bool = True) -> None:
        with self._cond:
            self._add_locked(key, full)

    def _add_locked(self, key: str, full: bool = True) -> None:
        if self._shutdown:
            return
        if full:
            self._full.add(key)
        if key in self._processing:
            self._dirty.add(key)
            return
        if key not in self._waiting:
            self._waiting.add(key)
            self._ready_since[key] = time.monotonic()
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        with self._cond:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        """Requeue a failed key after base * 2^failures seconds (capped); returns the delay."""
        with self._cond:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        delay = exponential(self.base_delay, self.max_delay, n)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to work on, or None on timeout or shutdown."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._take_locked(key)
                    return key
                if self._shutdown:
                    return None
                now = time.monotonic()
                wait = None if deadline is None else deadline - now
                if self._delayed:
                    due = self._delayed[0][0] - now
                    wait = due if wait is None else min(wait, due)
                if wait is not None and wait <= 0:
                    if deadline is not None and now >= deadline:
                        return None
                    continue
                self._cond.wait(wait)

    def get_batch(self, limit: int, timeout: float | None = None) -> list[str]:
        """The next key (waiting up to timeout) and up to limit-1 more that are ready now:
        work that arrived together is written together."""
        first = self.get(timeout)
        if first is None:
            return []
        keys = [first]
        with self._cond:
            self._promote_due()
            while self._queue and len(keys) < limit:
                key = self._queue.popleft()
                self._take_locked(key)
                keys.append(key)
        return keys

    def _take_locked(self, key: str) -> None:
        self._waiting.discard(key)
        self._ready_since.pop(key, None)
        self._processing.add(key)
        if key in self._full:
            self._full.discard(key)
            self._taken_full.add(key)

    def members_only(self, key: str) -> bool:
        """Whether a key being processed was added only with `full=False` since it was last
        taken (each of its changes can only have changed selected pods)."""
        with self._cond:
            return key in self._processing and key not in self._taken_full

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            self._taken_full.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                self._add_locked(key, full=False)  # a full add meanwhile marked it already

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add_locked(key)

    def oldest_age(self) -> float:
        """Seconds the head of the queue (the key ready longest) has waited; 0 when empty."""
        with self._cond:
            if not self._queue:
                return 0.0
            return time.monotonic() - self._ready_since.get(self._queue[0], time.monotonic())

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._delayed)

    def shut_down(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()
