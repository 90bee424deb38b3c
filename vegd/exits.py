"""Exit codes of every `vegd` command (one convention for the whole binary)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    INVALID = 1  # the input is wrong (or, for `apply --dry-run`, changes are pending)
    UNAVAILABLE = 2  # a database could not be reached, or the arguments are wrong


EXIT_OK, EXIT_INVALID, EXIT_UNAVAILABLE = Exit.OK, Exit.INVALID, Exit.UNAVAILABLE
