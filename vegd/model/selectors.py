"""Kubernetes label and node selectors: parsing and matching."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vegd.model.errors import ValidationError

_LABEL_OPS = {"In", "NotIn", "Exists", "DoesNotExist"}
_NODE_OPS = _LABEL_OPS | {"Gt", "Lt"}


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "In":
            return present and value in self.values
        if self.operator == "NotIn":
            return not present or value not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        # Gt/Lt (node selectors only): integer comparison, absent or non-integer never matches
        try:
            number, bound = int(value or ""), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return number > bound if self.operator == "Gt" else number < bound


@dataclass(frozen=True)
class LabelSelector:
    """metav1.LabelSelector. The empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )


@dataclass(frozen=True)
class NodeSelectorTerm:
    """One term of a required node affinity; terms of a list are ORed, their parts ANDed."""

    labels: LabelSelector = LabelSelector()
    match_fields: tuple[Requirement, ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        fields = {"metadata.name": name}
        return self.labels.matches(labels) and all(r.matches(fields) for r in self.match_fields)


def parse_label_selector(raw: Any, obj: str, field: str) -> LabelSelector:
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, Mapping):
        raise ValidationError(obj, field, "must be an object with matchLabels/matchExpressions")
    labels = raw.get("matchLabels") or {}
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise ValidationError(obj, f"{field}.matchLabels", "must map label names to strings")
    exprs = _parse_requirements(raw.get("matchExpressions"), obj, f"{field}.matchExpressions",
                                _LABEL_OPS)
    return LabelSelector(tuple(sorted(labels.items())), exprs)


def parse_node_selector_term(raw: Any, obj: str, field: str) -> NodeSelectorTerm:
    if not isinstance(raw, Mapping):
        raise ValidationError(obj, field, "must be an object")
    labels = parse_label_selector({"matchLabels": raw.get("matchLabels")}, obj, field)
    exprs = _parse_requirements(raw.get("matchExpressions"), obj, f"{field}.matchExpressions",
                                _NODE_OPS)
    labels = LabelSelector(labels.match_labels, exprs)
    fields = _parse_requirements(raw.get("matchFields"), obj, f"{field}.matchFields", _NODE_OPS)
    for req in fields:
        if req.key != "metadata.name":
            raise ValidationError(obj, f"{field}.matchFields",
                                  f"unsupported field {req.key!r} (only metadata.name)")
    return NodeSelectorTerm(labels, fields)


def _parse_requirements(raw: Any, obj: str, field: str, ops: set[str]) -> tuple[Requirement, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError(obj, field, "must be a list")
    out = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise ValidationError(obj, where, "must have a string key")
        op = item.get("operator")
        if op not in ops:
            raise ValidationError(obj, f"{where}.operator",
                                  f"{op!r} is not one of {', '.join(sorted(ops))}")
        values = item.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise ValidationError(obj, f"{where}.values", "must be a list of strings")
        if op in ("In", "NotIn") and not values:
            raise ValidationError(obj, f"{where}.values", f"must not be empty for {op}")
        if op in ("Exists", "DoesNotExist") and values:
            raise ValidationError(obj, f"{where}.values", f"must be empty for {op}")
        out.append(Requirement(item["key"], op, tuple(values)))
    return tuple(out)
