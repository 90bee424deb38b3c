"""Exponential backoff, capped, optionally jittered: the one used by the informers, the work
queue and the gateway agent's bfdd supervisor."""

from __future__ import annotations

import random


def exponential(base: float, cap: float, failures: int) -> float:
    """base * 2^failures seconds, at most cap."""
    return min(cap, base * 2 ** failures)


class Backoff:
    def __init__(self, base: float = 0.2, cap: float = 10.0, jitter: float = 0.2) -> None:
        self.base, self.cap, self.jitter, self.failures = base, cap, jitter, 0

    def peek(self) -> float:
        """The delay the next failure gets, without jitter."""
        return exponential(self.base, self.cap, self.failures)

    def next(self) -> float:
        delay = self.peek()
        self.failures += 1
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else delay

    def reset(self) -> None:
        self.failures = 0
