"""The input validator in front of the model: what the Kubernetes API server would refuse before
an object reaches `model.parse`.

`vegd run` reads objects the API server has already admitted; `vegd apply` reads a directory
nobody admitted. This module checks what is common to every object: a known apiVersion and kind,
a metadata block with a valid name (the API server's rule for the kind), labels and annotations
of the right types and syntax, and no object defined twice. Field types and ranges of each kind
are `model.parse`'s job (which never lets a malformed value through as an AttributeError).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vegd.model.errors import ValidationError

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ANNOTATIONS_MAX_BYTES = 256 * 1024  # the API server's total for one object


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    namespaced: bool
    name_rule: str = "subdomain"  # "subdomain" (253) or "label" (63), as the API server checks

    @property
    def group(self) -> str:
        return self.api_version.rsplit("/", 1)[0] if "/" in self.api_version else ""


KINDS: tuple[Kind, ...] = (
    Kind("kubeovn.io/v1", "VpcEgressGateway", namespaced=True),
    Kind("kubeovn.io/v1", "Vpc", namespaced=False),
    Kind("kubeovn.io/v1", "Subnet", namespaced=False),
    Kind("v1", "Pod", namespaced=True),
    Kind("v1", "Namespace", namespaced=False, name_rule="label"),
    Kind("v1", "Node", namespaced=False),
    Kind("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition", namespaced=True),
)
_BY_KIND = {k.kind: k for k in KINDS}


@functools.lru_cache(maxsize=8192)  # namespaces and label keys repeat on every object
def check_name(value: str, rule: str) -> str:
    """Why `value` is not a valid name under `rule`, or "" when it is."""
    limit, pattern = (63, DNS1123_LABEL) if rule == "label" else (253, DNS1123_SUBDOMAIN)
    if len(value) > limit:
        return f"{len(value)} characters, more than {limit}"
    if not pattern.match(value):
        shape = "label" if rule == "label" else "subdomain"
        return (f"{value!r} is not a DNS-1123 {shape}: lower-case letters, digits and '-'"
                + (", dot-separated," if rule != "label" else ",")
                + " starting and ending with a letter or digit")
    return ""


@functools.lru_cache(maxsize=8192)
def _check_qualified(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or check_name(prefix, "subdomain")):
        return f"key {key!r} has an invalid prefix"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return f"key {key!r} is not a qualified name"
    return ""


def _check_string_map(raw: Any, obj: str, field: str, values_are_labels: bool) -> None:
    if raw is None:
        return
    if not isinstance(raw, Mapping):
        raise ValidationError(obj, field, f"must map names to strings, not {type(raw).__name__}")
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError(obj, f"{field}[{key!r}]", "keys and values must be strings")
        why = _check_qualified(key)
        if why:
            raise ValidationError(obj, field, why)
        if values_are_labels and (len(value) > 63 or not _LABEL_VALUE.match(value)):
            raise ValidationError(obj, f"{field}[{key!r}]", f"{value!r} is not a valid label "
                                  "value (at most 63 letters, digits, '-', '_', '.')")
    if not values_are_labels and sum(len(k) + len(v) for k, v in raw.items()) > \
            ANNOTATIONS_MAX_BYTES:
        raise ValidationError(obj, field, f"more than {ANNOTATIONS_MAX_BYTES} bytes")


def describe(raw: Mapping[str, Any]) -> str:
    """`Kind ns/name` (or as much of it as the object has) for messages about its envelope."""
    kind = raw.get("kind")
    meta = raw.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    ns = meta.get("namespace") if isinstance(meta, Mapping) else None
    ref = str(kind) if isinstance(kind, str) and kind else "object"
    if isinstance(name, str) and name:
        ref += f" {ns}/{name}" if isinstance(ns, str) and ns else f" {name}"
    return ref


def check_object(raw: Any) -> Kind:
    """The object's Kind; ValidationError when a Kubernetes API server would refuse it."""
    if not isinstance(raw, Mapping):
        raise ValidationError("object", "(document)",
                              f"must be a Kubernetes object (a mapping), not {type(raw).__name__}")
    obj = describe(raw)
    kind, api = raw.get("kind"), raw.get("apiVersion")
    if kind is None or kind == "":
        raise ValidationError(obj, "kind", "is missing")
    if not isinstance(kind, str):
        raise ValidationError(obj, "kind", f"must be a string, not {type(kind).__name__}")
    if not isinstance(api, str) or not api:
        raise ValidationError(obj, "apiVersion", "is missing" if api in (None, "")
                              else f"must be a string, not {type(api).__name__}")
    known = _BY_KIND.get(kind)
    if known is None:
        raise ValidationError(obj, "kind", f"{kind!r} is not a kind vegd reads (one of "
                              f"{', '.join(sorted(_BY_KIND))})")
    if api != known.api_version:
        raise ValidationError(obj, "apiVersion", f"{api!r} is not served for {kind}: "
                              f"use {known.api_version}")
    meta = raw.get("metadata")
    if not isinstance(meta, Mapping):
        raise ValidationError(obj, "metadata", "is missing" if meta is None
                              else f"must be an object, not {type(meta).__name__}")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError(obj, "metadata.name", "is missing" if name in (None, "")
                              else f"must be a string, not {type(name).__name__}")
    why = check_name(name, known.name_rule)
    if why:
        raise ValidationError(obj, "metadata.name", why)
    ns = meta.get("namespace")
    if ns is not None and known.namespaced:
        if not isinstance(ns, str):
            raise ValidationError(obj, "metadata.namespace",
                                  f"must be a string, not {type(ns).__name__}")
        why = check_name(ns, "label") if ns else ""
        if why:
            raise ValidationError(obj, "metadata.namespace", why)
    _check_string_map(meta.get("labels"), obj, "metadata.labels", values_are_labels=True)
    _check_string_map(meta.get("annotations"), obj, "metadata.annotations",
                      values_are_labels=False)
    for field in ("spec", "status"):
        if raw.get(field) is not None and not isinstance(raw[field], Mapping):
            raise ValidationError(obj, field,
                                  f"must be an object, not {type(raw[field]).__name__}")
    return known


def identity(raw: Mapping[str, Any], kind: Kind) -> tuple[str, str, str]:
    """(kind, namespace, name) as the API server keys the object (namespace "default" when a
    namespaced object gives none; none for cluster-scoped kinds)."""
    meta = raw["metadata"]
    ns = (meta.get("namespace") or "default") if kind.namespaced else ""
    return kind.kind, ns, meta["name"]


def check_objects(sources: Iterable[tuple[str, Any]]
                  ) -> tuple[list[tuple[str, Mapping[str, Any]]], list[ValidationError]]:
    """Objects that pass, with where they came from, and one error per object that does not.

    An object defined twice (same kind, namespace and name) is refused at its second place:
    which of the two is meant is not for vegd to guess."""
    good: list[tuple[str, Mapping[str, Any]]] = []
    errors: list[ValidationError] = []
    seen: dict[tuple[str, str, str], str] = {}
    for where, raw in sources:
        try:
            kind = check_object(raw)
        except ValidationError as exc:
            errors.append(located(exc, where))
            continue
        ident = identity(raw, kind)
        if ident in seen:
            errors.append(located(ValidationError(
                describe(raw), "metadata.name",
                f"{ident[0]} {'/'.join(p for p in ident[1:] if p)} is defined twice "
                f"(first in {seen[ident]})"), where))
            continue
        seen[ident] = where
        good.append((where, raw))
    return good, errors


def located(exc: ValidationError, where: str) -> ValidationError:
    """The same error, with the file and document it came from in front of the object."""
    return ValidationError(f"{where}: {exc.obj}" if where else exc.obj, exc.field, exc.message)
