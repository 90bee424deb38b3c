"""Kubernetes quantities and Kube-OVN's bandwidth rates, parsed exactly (fractions, no floats).

`spec.resources` is a core/v1 ResourceRequirements; `spec.bandwidth.{ingress,egress}` is
Kube-OVN's `BandwidthRate`: an integer or numeric string is Mbps, a quantity with M/Mi/G/Gi is
bit/s, rounded up to whole Mbps (`1Gi` -> 1074, `100Mi` -> 105).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from vegd.model.errors import ValidationError

# The apimachinery quantity grammar, as controller-gen writes it into CRDs.
QUANTITY = re.compile(r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                      r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
BANDWIDTH = re.compile(r"^([0-9]+|([0-9]+(\.[0-9]+)?|\.[0-9]+)(M|Mi|G|Gi))$")
MAX_MBPS = 9_223_372_036_854  # Kube-OVN's CEL bound: Mbps whose bit/s fit an int64
_SUFFIX: dict[str, int | Fraction] = {
           "": 1, "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_RATE_SUFFIX = {"M": 10**6, "Mi": 2**20, "G": 10**9, "Gi": 2**30}
RESOURCE_KEYS = ("limits", "requests", "claims")


def quantity(text: Any) -> Fraction:
    """The value of a quantity (`100m`, `64Mi`, `1e3`, 2). Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a quantity")
    if isinstance(text, int):
        return Fraction(text)
    s = str(text)
    if not QUANTITY.match(s):
        raise ValueError(f"{text!r} is not a quantity")
    number = re.match(r"^[+-]?(\d+(\.\d*)?|\.\d+)", s)
    assert number is not None
    value = Fraction(number.group(0))
    rest = s[number.end():]
    if rest[:1] in ("e", "E"):
        return value * Fraction(10) ** int(Fraction(rest[1:]))
    return value * _SUFFIX[rest]


def bandwidth_mbps(raw: Any, obj: str, field: str) -> int:
    """Mbps of a bandwidth rate; 0 (or absent) means unlimited."""
    if raw is None:
        return 0
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValidationError(obj, field, f"{raw!r} is not an integer or a quantity")
    if isinstance(raw, int):
        if not 0 <= raw <= MAX_MBPS:
            raise ValidationError(obj, field, f"{raw} is out of range 0..{MAX_MBPS}")
        return raw
    if not BANDWIDTH.match(raw):
        raise ValidationError(obj, field, f"{raw!r} must be an integer (Mbps) or a quantity "
                              "with M, Mi, G or Gi (bit/s), e.g. 100, 500M, 1Gi")
    suffix = re.search(r"(Mi|Gi|M|G)$", raw)
    if suffix is None:
        mbps = int(raw)
    else:
        bits = Fraction(raw[:suffix.start()]) * _RATE_SUFFIX[suffix.group(1)]
        mbps = math.ceil(bits / 10**6)
    if mbps > MAX_MBPS:
        raise ValidationError(obj, field, f"{raw!r} is more than {MAX_MBPS} Mbps")
    return mbps


def parse_resources(raw: Any, obj: str, field: str = "spec.resources") -> str:
    """A ResourceRequirements as canonical JSON ("" when absent). Quantities are checked, and
    every request must not exceed its limit (the API server would refuse the pod otherwise)."""
    if raw is None:
        return ""
    if not isinstance(raw, Mapping):
        raise ValidationError(obj, field, "must be an object")
    unknown = sorted(set(raw) - set(RESOURCE_KEYS))
    if unknown:
        raise ValidationError(obj, field, f"unknown field(s) {', '.join(unknown)}")
    values: dict[str, dict[str, Fraction]] = {}
    for part in ("limits", "requests"):
        m = raw.get(part) or {}
        if not isinstance(m, Mapping):
            raise ValidationError(obj, f"{field}.{part}", "must be a map of quantities")
        values[part] = {}
        for name, text in m.items():
            try:
                values[part][str(name)] = quantity(text)
            except ValueError as exc:
                raise ValidationError(obj, f"{field}.{part}.{name}", str(exc)) from None
            if values[part][str(name)] < 0:
                raise ValidationError(obj, f"{field}.{part}.{name}", "must not be negative")
    for name, request in values["requests"].items():
        limit = values["limits"].get(name)
        if limit is not None and request > limit:
            raise ValidationError(obj, f"{field}.requests.{name}",
                                  f"{raw['requests'][name]} is more than its limit "
                                  f"{raw['limits'][name]}")
    claims = raw.get("claims")
    if claims is not None and not (isinstance(claims, list) and all(
            isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in claims)):
        raise ValidationError(obj, f"{field}.claims", "must be a list of {name: ...}")
    body = {k: v for k, v in raw.items() if v not in (None, {}, [])}
    return json.dumps(body, sort_keys=True)
