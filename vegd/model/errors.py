"""The one error the pure rooms raise: which object, which field, what is wrong."""

from __future__ import annotations


class ValidationError(ValueError):
    """Invalid input. `str()` is a sentence a person can act on."""

    def __init__(self, obj: str, field: str, message: str, reason: str = "") -> None:
        super().__init__(f"{obj}: {field}: {message}")
        self.obj = obj
        self.field = field
        self.message = message
        self.reason = reason  # a condition reason more precise than InvalidSpec, when known


class InvalidObjects(ValueError):
    """Several objects are invalid; nothing may be written."""

    def __init__(self, errors: list[ValidationError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
