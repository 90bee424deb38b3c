"""Errors of the NB room, as types: callers decide by class, never by the wording of a message.

`NbUnavailable` and its subclasses are worth retrying (the database went away, a RAFT member is
not the leader, the lock moved, a deadline passed); `ReconcileError` and its subclasses are
refusals of the rows themselves, with nothing written.
"""

from __future__ import annotations


class NbUnavailable(RuntimeError):
    """The database could not be reached (or did not answer in time). Worth retrying."""


class ConnectionLost(NbUnavailable):
    """The connection dropped while a transaction was in flight: it may or may not have
    committed; the next diff against the refreshed replica tells."""


class NbTimeout(NbUnavailable):
    """No answer within the configured timeout."""


class NotLockHolder(NbUnavailable):
    """Another vegd holds the NB lock: this process is a standby and must not write."""


class ReconcileError(RuntimeError):
    """The desired rows cannot be written as they are (missing router, a name another writer
    holds). Nothing was written: the whole transaction is abandoned."""


class ConstraintViolation(ReconcileError):
    """ovsdb-server refused the transaction (a unique index, a referential constraint)."""


class OwnedElsewhere(ReconcileError):
    """A unique row (a BFD session's address, a port name) belongs to another owner of ours that
    still has it: planning both owners into one transaction moves it."""

    def __init__(self, message: str, holder: tuple[str, str]) -> None:
        super().__init__(message)
        self.holder = holder


class BatchRefused(ReconcileError):
    """Some owners of a transaction were refused; nothing was written for any of them."""

    def __init__(self, refused: dict[str, str], moves: dict[str, tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{owner}: {why}" for owner, why in refused.items()))
        self.refused = refused  # owner -> why
        self.moves = moves  # owner -> the owner of ours holding what it needs
