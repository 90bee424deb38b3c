"""CustomResourceDefinitions: what apiextensions-apiserver checks when one is created, and the
status it reports (names accepted, established). The store registers the resources of a stored
CRD (``Registry.add_crd``) and, when the CRD is deleted, deletes its objects first, as the
``customresourcecleanup`` finalizer does."""

from __future__ import annotations

from typing import Any

from . import cel

_SCOPES = ("Namespaced", "Cluster")


def validate_crd(crd: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, message) for each problem, like the server's CRD validation (a subset:
    names, scope, versions, and that every CEL rule compiles)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural = spec.get("group") or "", names.get("plural") or ""
    out: list[tuple[str, str]] = []
    name = (crd.get("metadata") or {}).get("name", "")
    if name != f"{plural}.{group}":
        out.append(("metadata.name", f'Invalid value: "{name}": must be spec.names.plural+"."'
                    f"+spec.group"))
    if not group or "." not in group:
        out.append(("spec.group", f'Invalid value: "{group}": should be a domain with at least '
                    f"one dot"))
    for key in ("plural", "kind"):
        if not names.get(key):
            out.append((f"spec.names.{key}", "Required value"))
    if spec.get("scope") not in _SCOPES:
        out.append(("spec.scope", f'Unsupported value: "{spec.get("scope")}": supported values: '
                    f'"Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if not versions:
        out.append(("spec.versions", "Invalid value: null: must have exactly one version marked "
                    "as storage version"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        out.append(("spec.versions", "Invalid value: ...: must have exactly one version marked "
                    "as storage version"))
    for i, v in enumerate(versions):
        schema = (v.get("schema") or {}).get("openAPIV3Schema")
        try:
            cel.compile_rules(schema, f"spec.versions[{i}].schema.openAPIV3Schema")
        except cel.CelCompileError as e:
            path, _, message = str(e).partition(": ")
            out.append((path, message))
    return out


def established_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    old = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or []}

    def cond(type_: str, reason: str, message: str) -> dict[str, Any]:
        since = (old.get(type_) or {}).get("lastTransitionTime", now)
        return {"type": type_, "status": "True", "lastTransitionTime": since, "reason": reason,
                "message": message}

    return {"acceptedNames": names,
            "conditions": [cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                           cond("Established", "InitialNamesAccepted",
                                "the initial names have been accepted")],
            "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")]}
