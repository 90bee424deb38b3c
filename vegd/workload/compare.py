"""Is what vegd asked for still in a live object, after the API server has defaulted it?

The API server adds fields (strategy defaults, `imagePullPolicy`, `terminationMessagePath`, probe
`successThreshold`, port `protocol`, ...) and rewrites quantities into canonical form (`0.5` →
`500m`). So the check is one-sided: every field of the desired object must be in the live one
with an equal value; fields only the live object has are ignored. Lists must have the same length
and match item by item (the API server keeps list order). Resource quantities compare by value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))"
                       r"(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$")
_SUFFIX = {
    "": Fraction(1), "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
    "Ki": Fraction(2**10), "Mi": Fraction(2**20), "Gi": Fraction(2**30), "Ti": Fraction(2**40),
    "Pi": Fraction(2**50), "Ei": Fraction(2**60),
}


def quantity(value: object) -> Fraction | None:
    """The value of a Kubernetes resource quantity (`100m`, `64Mi`, `1e3`, 2), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Fraction(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if match is None:
        return None
    number = Fraction(match.group(1))
    if match.group(2):
        return number * Fraction(10) ** int(match.group(2)[1:])
    return number * _SUFFIX[match.group(3) or ""]


def contained(desired: Any, live: Any, path: str = "") -> str | None:
    """None when `desired` is contained in `live`; else the path of the first difference."""
    if _is_mapping(desired):
        if not _is_mapping(live):
            return path or "."
        for key, value in desired.items():
            if key not in live:
                if value in ({}, [], None):  # the server may drop an empty field
                    continue
                return f"{path}.{key}"
            other = live[key]
            if type(value) is str and type(other) is str and value == other:
                continue  # the common leaf, without a call and its path
            found = contained(value, other, f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return path or "."
        for i, (d, v) in enumerate(zip(desired, live, strict=True)):
            if type(d) is str and type(v) is str and d == v:
                continue
            found = contained(d, v, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if desired == live and type(desired) is type(live):
        return None
    if _under_resources(path):
        a, b = quantity(desired), quantity(live)
        if a is not None and a == b:
            return None
    return path or "."


def _is_mapping(value: Any) -> bool:
    # JSON's objects are dicts: the ABC's own check (slow) only for something else
    return type(value) is dict or (type(value) not in _NOT_MAPPINGS and isinstance(value, Mapping))


_NOT_MAPPINGS = frozenset({str, int, float, bool, list, type(None)})


def _under_resources(path: str) -> bool:
    return ".resources.limits." in path or ".resources.requests." in path
