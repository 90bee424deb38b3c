"""The OpenAPI v3 documents kubectl reads: ``/openapi/v3`` (an index of group-versions) and
``/openapi/v3/<api|apis/group>/<version>`` (paths and schemas of one group-version).

What kubectl 1.32 takes from them: whether the PATCH operation of a kind accepts the
``fieldValidation`` query parameter (then ``kubectl apply``/``create`` send
``fieldValidation=Strict`` and leave validation to the server, as against a real 1.27+ server),
and whether PATCH accepts ``application/strategic-merge-patch+json`` (not advertised here, so
kubectl computes strategic merge patches from its built-in types, and JSON merge patches for
custom resources, exactly as it does for CRDs on a real server). Schemas: a CRD's
openAPIV3Schema as published by the real server; built-in types get an open object schema.
``/openapi/v2`` is not served (kubectl asks for it as protobuf only, and falls back).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .resources import Registry, ResourceType

_QUERY = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
          for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json")


def gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _schema_name(rt: ResourceType) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


def _gvk(rt: ResourceType) -> dict[str, str]:
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _op(rt: ResourceType, action: str, ref: str, body: bool = False,
        patch: bool = False) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}", "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": _gvk(rt),
        "parameters": _QUERY if (body or patch) else [],
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": ref}}}}},
    }
    if patch:
        op["requestBody"] = {"content": {t: {"schema": {"type": "object"}}
                                         for t in _PATCH_TYPES}, "required": True}
    elif body:
        op["requestBody"] = {"content": {"application/json": {"schema": {"$ref": ref}}},
                             "required": True}
    return op


def _paths(rt: ResourceType) -> dict[str, Any]:
    base = "/" + gv_path(rt.group, rt.version)
    if rt.namespaced:
        base += "/namespaces/{namespace}"
    ref = f"#/components/schemas/{_schema_name(rt)}"
    item = f"{base}/{rt.plural}/{{name}}"
    out: dict[str, Any] = {
        f"{base}/{rt.plural}": {"get": _op(rt, "list", ref), "post": _op(rt, "post", ref, True)},
        item: {"get": _op(rt, "get", ref), "put": _op(rt, "put", ref, True),
               "patch": _op(rt, "patch", ref, patch=True), "delete": _op(rt, "delete", ref)},
    }
    if rt.status:
        out[f"{item}/status"] = {"get": _op(rt, "get", ref), "put": _op(rt, "put", ref, True),
                                 "patch": _op(rt, "patch", ref, patch=True)}
    return out


def _schema(rt: ResourceType) -> dict[str, Any]:
    base = rt.schema if rt.schema is not None else {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {**base, "x-kubernetes-group-version-kind": [_gvk(rt)]}


def group_version_doc(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = [t for t in reg.all() if t.group == group and t.version == version]
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for rt in types:
        paths.update(_paths(rt))
        schemas[_schema_name(rt)] = _schema(rt)
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.34.0"},
            "paths": paths, "components": {"schemas": schemas}}


def _hash(doc: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()


def index(reg: Registry) -> dict[str, Any]:
    gvs = sorted({(t.group, t.version) for t in reg.all()})
    paths = {}
    for g, v in gvs:
        doc = group_version_doc(reg, g, v)
        assert doc is not None
        paths[gv_path(g, v)] = {"serverRelativeURL": f"/openapi/v3/{gv_path(g, v)}"
                                                     f"?hash={_hash(doc)}"}
    return {"paths": paths}
