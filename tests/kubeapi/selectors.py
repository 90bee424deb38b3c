"""Label and field selectors, parsed and matched the way the Kubernetes API server does.

Label selector grammar (k8s.io/apimachinery/pkg/labels): comma-separated requirements, each one of
``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``, ``key in (a,b)``,
``key notin (a,b)``. ``!=`` and ``notin`` also match objects that lack the key.

Field selectors (k8s.io/apimachinery/pkg/fields): ``path=value``, ``path==value``,
``path!=value``, comma-separated. Each resource type declares which paths it supports; any other
path is rejected with 400, as the real server does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"


class SelectorError(ValueError):
    """A selector that does not parse; the server answers 400 BadRequest."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key, like the real server
        return not present or labels[self.key] not in self.values


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in {text!r}")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SelectorError(f"unbalanced parentheses in {text!r}")
    parts.append("".join(cur))
    return parts


_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\((.*)\)\s*$")
_EQ_RE = re.compile(rf"^\s*({_KEY})\s*(==|!=|=)\s*({_VALUE})\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a label selector string; an empty selector matches everything."""
    if text is None or not text.strip():
        return ()
    reqs = []
    for part in _split_top(text):
        if not part.strip():
            raise SelectorError(f"empty requirement in label selector {text!r}")
        m = _SET_RE.match(part)
        if m:
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            for v in values:
                if not re.fullmatch(_VALUE, v):
                    raise SelectorError(f"invalid label value {v!r}")
            reqs.append(Requirement(m.group(1), m.group(2), values))
            continue
        m = _EQ_RE.match(part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            reqs.append(Requirement(m.group(1), op, (m.group(3),)))
            continue
        m = _EXISTS_RE.match(part)
        if m:
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
            continue
        raise SelectorError(f"unable to parse requirement: {part.strip()!r}")
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str


def parse_field_selector(text: str | None,
                         supported: frozenset[str]) -> tuple[FieldRequirement, ...]:
    if text is None or not text.strip():
        return ()
    reqs = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*([^,]*?)\s*", part)
        if not m:
            raise SelectorError(f"invalid selector: {part!r}")
        path = m.group(1)
        if path not in supported:
            raise SelectorError(f'field label not supported: {path}')
        reqs.append(FieldRequirement(path, m.group(2) == "!=", m.group(3)))
    return tuple(reqs)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a field, as the server's field-label conversion produces it."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            cur = None
            break
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    return all((field_value(obj, r.path) == r.value) != r.negate for r in reqs)


def make_filter(label_selector: str | None, field_selector: str | None,
                supported_fields: frozenset[str]) -> Callable[[Mapping[str, Any]], bool]:
    """Parse both selectors (raising SelectorError) and return a predicate on objects."""
    lreqs = parse_label_selector(label_selector)
    freqs = parse_field_selector(field_selector, supported_fields)

    def predicate(obj: Mapping[str, Any]) -> bool:
        return labels_match(lreqs, obj) and fields_match(freqs, obj)

    predicate.selects = bool(lreqs or freqs)  # type: ignore[attr-defined]
    return predicate


def selector_from_label_selector(sel: Mapping[str, Any] | None) -> str:
    """Render a metav1.LabelSelector dict as the selector string (used for scale status)."""
    if not sel:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for expr in sel.get("matchExpressions") or []:
        op = expr.get("operator")
        key = expr.get("key")
        vals = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({vals})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({vals})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
