"""Requests as the API server's authorizer sees them: (apiGroup, resource[/subresource], verb),
following Kubernetes' RequestInfo rules, and a ClusterRole's rules in the same terms."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Attributes = tuple[str, str, str]  # (apiGroup, resource or resource/subresource, verb)

_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def attributes(method: str, path: str, query: Mapping[str, str]) -> Attributes | None:
    """None for a non-resource URL (/api, /apis, /version, discovery)."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # /namespaces/{ns}/{resource}/...: namespaced
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    if len(rest) >= 3:
        resource = f"{resource}/{rest[2]}"
    if method == "GET":
        verb = "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _WRITE_VERBS[method]
    return group, resource, verb


def granted(cluster_role: Mapping[str, Any]) -> set[Attributes]:
    """Every (apiGroup, resource, verb) a ClusterRole's rules spell out (no wildcards)."""
    out: set[Attributes] = set()
    for rule in cluster_role.get("rules") or []:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    out.add((group, resource, verb))
    return out


def used(requests: Iterable[tuple[str, str, Mapping[str, str]]]) -> set[Attributes]:
    return {a for a in (attributes(m, p, q) for m, p, q in requests) if a is not None}
