"""Structural-schema handling for custom resources, and a few built-in defaults.

What the real API server does with a CRD's openAPIV3Schema, in the order it does it:
pruning of unknown fields (unless ``x-kubernetes-preserve-unknown-fields``), defaulting
(``default`` of a missing property whose parent object is present), then OpenAPI validation.
Validation here uses ``jsonschema`` (Draft 7 keywords; ``nullable`` honoured by dropping nulls
where it is not set, ``x-kubernetes-*`` ignored). CEL ``x-kubernetes-validations`` are evaluated
separately, by ``cel.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def prune(obj: Any, schema: dict[str, Any] | None, root: bool = False,
          dropped: list[str] | None = None, path: str = "") -> Any:
    """Drop fields the structural schema does not specify (and nulls where not nullable);
    the paths of unknown fields dropped are appended to ``dropped``."""
    if schema is None:
        return obj
    if isinstance(obj, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        opaque = "type" not in schema and props is None and addl is None
        out = {}
        for k, v in obj.items():
            child = f"{path}.{k}" if path else k
            if v is None and not _nullable(props, k, addl):
                continue
            if root and k in _ROOT_KEEP:
                out[k] = v
            elif props is not None and k in props:
                out[k] = prune(v, props[k], dropped=dropped, path=child)
            elif isinstance(addl, dict):
                out[k] = prune(v, addl, dropped=dropped, path=child)
            elif preserve or opaque or addl is True:
                out[k] = v
            elif dropped is not None:
                dropped.append(child)
        return out
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prune(x, schema["items"], dropped=dropped, path=f"{path}[{i}]")
                for i, x in enumerate(obj)]
    return obj


def _nullable(props: dict[str, Any] | None, key: str, addl: Any) -> bool:
    if props is not None and key in props:
        return bool(props[key].get("nullable"))
    if isinstance(addl, dict):
        return bool(addl.get("nullable"))
    return True


def apply_defaults(obj: Any, schema: dict[str, Any] | None) -> Any:
    if schema is None:
        return obj
    if isinstance(obj, dict):
        for k, sub in (schema.get("properties") or {}).items():
            if k not in obj and "default" in sub:
                obj[k] = copy.deepcopy(sub["default"])
            if k in obj:
                apply_defaults(obj[k], sub)
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for k, v in obj.items():
                if k not in (schema.get("properties") or {}):
                    apply_defaults(v, addl)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for x in obj:
            apply_defaults(x, schema["items"])
    return obj


def _to_jsonschema(schema: Any) -> Any:
    """Translate OpenAPI v3 ``nullable`` into JSON Schema types; leave the rest as is."""
    if isinstance(schema, dict):
        out = {k: _to_jsonschema(v) for k, v in schema.items()
               if not k.startswith("x-kubernetes-")}
        if schema.get("nullable") and isinstance(schema.get("type"), str):
            out["type"] = [schema["type"], "null"]
        if schema.get("x-kubernetes-int-or-string"):
            out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        return out
    if isinstance(schema, list):
        return [_to_jsonschema(x) for x in schema]
    return schema


def validate(obj: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Return (field path, message) for each violation, in the server's field-path style."""
    body = {k: v for k, v in obj.items() if k != "metadata"}
    js = _to_jsonschema(schema)
    js.get("properties", {}).pop("metadata", None)
    errors = []
    for err in sorted(jsonschema.Draft7Validator(js).iter_errors(body), key=str):
        path = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in err.absolute_path)
        path = path.replace(".[", "[")
        errors.append((path or "<root>", f"Invalid value: {err.instance!r}: {err.message}"))
    return errors


def process_custom(obj: dict[str, Any], schema: dict[str, Any] | None,
                   dropped: list[str] | None = None) -> dict[str, Any]:
    """Prune then default a custom resource (validation is a separate step)."""
    if schema is None:
        return obj
    out = prune(obj, schema, root=True, dropped=dropped)
    return apply_defaults(out, schema)


# ---------------------------------------------------------------- built-in defaults

def _default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        image = c.get("image") or ""
        tagless = ":" not in image.rsplit("/", 1)[-1] and "@" not in image
        c.setdefault("imagePullPolicy",
                     "Always" if tagless or image.endswith(":latest") else "IfNotPresent")
        c.setdefault("resources", {})


def default_builtin(kind: str, obj: dict[str, Any]) -> None:
    """The defaults that the API server's defaulting functions add to what vegd creates."""
    if kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            strategy["type"] = "RollingUpdate"
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        tmpl = spec.setdefault("template", {})
        _default_pod_spec(tmpl.setdefault("spec", {}))
    elif kind == "Pod":
        _default_pod_spec(obj.setdefault("spec", {}))
    elif kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
