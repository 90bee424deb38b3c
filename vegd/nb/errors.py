"""Errors of the NB room."""

from __future__ import annotations


class NbUnavailable(RuntimeError):
    """The database could not be reached (or did not answer in time). Worth retrying."""


class ReconcileError(RuntimeError):
    """The desired rows cannot be written as they are (missing router, a name another writer
    holds). Nothing was written: the whole transaction is abandoned."""


class NotLockHolder(NbUnavailable):
    """Another vegd holds the NB lock: this process is a standby and must not write."""
