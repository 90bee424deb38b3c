"""CEL validation rules (``x-kubernetes-validations``) of a CRD, evaluated with cel-python.

What the real API server does (apiextensions-apiserver's ``cel`` validator), as far as the
rules vegd ships depend on it:

- a rule sits on a schema node and is evaluated once per value at that node: ``self`` is that
  value (an object, an array item, a scalar), after pruning and defaulting;
- a *transition rule* (one that mentions ``oldSelf``) runs only on update, and only where the
  old object has a correlatable value at the same place: object properties by name, items of a
  ``x-kubernetes-list-type: map`` list by their keys, ``set`` lists by value; never inside
  ``atomic`` lists;
- a failed rule gives ``<path>: Invalid value: "<schema type>": <message>`` where the message is
  ``messageExpression`` (if it evaluates to a non-empty string), else ``message``, else
  ``failed rule: <rule>``; ``fieldPath`` moves the error to a field below the node; ``reason``
  picks the error type (FieldValueInvalid by default);
- an evaluation error is reported on the node as ``Invalid value: "<type>": <error> evaluating
  rule: <rule>``; a rule that does not compile makes the CRD itself invalid (``compile``).

Not modelled: cost budgets, the Kubernetes CEL extension libraries beyond the CEL standard
functions that cel-python provides (``matches``, ``size``, macros ...), ``optionalOldSelf``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import celpy

_REASONS = {  # reason -> how the field error renders (k8s.io/apimachinery field.ErrorType)
    "FieldValueInvalid": "Invalid value: {value}: {message}",
    "FieldValueForbidden": "Forbidden: {message}",
    "FieldValueRequired": "Required value: {message}",
    "FieldValueDuplicate": "Duplicate value: {value}",
}

_ENV = celpy.Environment()


class CelCompileError(ValueError):
    """A rule of the CRD does not compile (the CRD is invalid)."""


@dataclass
class Rule:
    rule: str
    program: Any
    message: str | None
    message_program: Any | None
    field_path: str
    reason: str
    transition: bool


def _compile(text: str, where: str) -> Any:
    try:
        return _ENV.program(_ENV.compile(text))
    except Exception as e:  # celpy raises CELParseError and friends
        raise CelCompileError(f"{where}: Invalid value: {text!r}: compilation failed: "
                              f"{str(e).strip()}") from e


def _uses_old_self(text: str) -> bool:
    return re.search(r"\boldSelf\b", text) is not None


def compile_rules(schema: dict[str, Any] | None, where: str = "openAPIV3Schema") -> None:
    """Compile every rule of the schema now (raises CelCompileError), as CRD creation does."""
    if schema is None:
        return
    _rules_of(schema, where)
    for k, sub in (schema.get("properties") or {}).items():
        compile_rules(sub, f"{where}.properties[{k}]")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            compile_rules(schema[key], f"{where}.{key}")


_CACHE: dict[int, tuple[dict[str, Any], list[Rule]]] = {}


def _rules_of(node: dict[str, Any], where: str = "") -> list[Rule]:
    cached = _CACHE.get(id(node))
    if cached is not None and cached[0] is node:
        return cached[1]
    out = []
    for i, r in enumerate(node.get("x-kubernetes-validations") or []):
        at = f"{where}.x-kubernetes-validations[{i}]"
        text = r["rule"]
        mexpr = r.get("messageExpression")
        out.append(Rule(text, _compile(text, f"{at}.rule"), r.get("message"),
                        _compile(mexpr, f"{at}.messageExpression") if mexpr else None,
                        r.get("fieldPath", ""), r.get("reason", "FieldValueInvalid"),
                        _uses_old_self(text)))
    _CACHE[id(node)] = (node, out)  # holding the node keeps its id from being reused
    return out


def _schema_type(node: dict[str, Any]) -> str:
    return str(node.get("type") or "object")


def _eval(program: Any, activation: dict[str, Any]) -> Any:
    result = program.evaluate(activation)
    if isinstance(result, celpy.CELEvalError):
        raise result
    return result


def _join(path: str, field_path: str) -> str:
    if not field_path:
        return path
    return path + (field_path if field_path.startswith(("[", ".")) else "." + field_path)


def _failure(rule: Rule, path: str, node: dict[str, Any], act: dict[str, Any]) -> tuple[str, str]:
    message = rule.message or f"failed rule: {rule.rule}"
    if rule.message_program is not None:
        try:
            m = _eval(rule.message_program, act)
            if isinstance(m, str) and m.strip():
                message = str(m)
        except Exception:  # the server logs it and keeps the static message
            pass
    where = _join(path, rule.field_path)
    value = f'"{_schema_type(node)}"'
    template = _REASONS.get(rule.reason, _REASONS["FieldValueInvalid"])
    return where, template.format(value=value, message=message)


# CEL is pure: a rule's verdict depends only on self (and oldSelf). cel-python interprets a rule
# in about a millisecond, and most writes (status updates) leave the ruled values unchanged, so
# verdicts are memoised by value: (rule, self, oldSelf) -> (path, message) list, bounded.
_VERDICTS: dict[tuple[int, str, str | None], list[tuple[str, str]]] = {}
_VERDICTS_MAX = 4096


def _verdict(rule: Rule, node: dict[str, Any], value: Any, old: Any, has_old: bool,
             path: str) -> list[tuple[str, str]]:
    key = (id(rule), json.dumps(value, sort_keys=True),
           json.dumps(old, sort_keys=True) if rule.transition else None)
    cached = _VERDICTS.get(key)
    if cached is None:
        act = {"self": celpy.json_to_cel(value)}
        if has_old:
            act["oldSelf"] = celpy.json_to_cel(old)
        try:
            ok = _eval(rule.program, act)
            passed = ok is True or (isinstance(ok, celpy.celtypes.BoolType) and bool(ok))
            cached = [] if passed else [_failure(rule, "", node, act)]
        except Exception as e:
            cached = [("", f'Invalid value: "{_schema_type(node)}": {e} evaluating rule: '
                           f"{rule.rule}")]
        if len(_VERDICTS) >= _VERDICTS_MAX:
            _VERDICTS.clear()
        _VERDICTS[key] = cached
    return [(_join(path, where), message) for where, message in cached]


def _check_node(node: dict[str, Any], value: Any, old: Any, has_old: bool, path: str,
                errors: list[tuple[str, str]], descend: bool = True) -> None:
    for rule in _rules_of(node):
        if rule.transition and not has_old:
            continue
        errors += _verdict(rule, node, value, old, has_old, path)
    if descend:
        _descend(node, value, old, has_old, path, errors)


def _descend(node: dict[str, Any], value: Any, old: Any, has_old: bool, path: str,
             errors: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        props = node.get("properties") or {}
        addl = node.get("additionalProperties")
        old_map = old if has_old and isinstance(old, dict) else {}
        for k, v in value.items():
            sub = props.get(k) if k in props else (addl if isinstance(addl, dict) else None)
            if sub is None or v is None:
                continue
            child = f"{path}.{k}" if path else k
            _check_node(sub, v, old_map.get(k), k in old_map, child, errors)
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        items = node["items"]
        list_type = node.get("x-kubernetes-list-type", "atomic")
        keys = node.get("x-kubernetes-list-map-keys") or []
        olds = old if has_old and isinstance(old, list) else []
        for i, v in enumerate(value):
            ov, found = None, False
            if list_type == "map" and isinstance(v, dict):
                match = [o for o in olds if isinstance(o, dict)
                         and all(o.get(k) == v.get(k) for k in keys)]
                ov, found = (match[0], True) if match else (None, False)
            elif list_type == "set" and v in olds:
                ov, found = v, True
            _check_node(items, v, ov, found, f"{path}[{i}]", errors)


def validate(obj: dict[str, Any], schema: dict[str, Any] | None,
             old: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Violations of the schema's CEL rules as (field path, message); ``old`` on update."""
    if schema is None:
        return []
    errors: list[tuple[str, str]] = []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    old_body = {k: v for k, v in (old or {}).items() if k != "metadata"}
    # root rules see the whole object (metadata included); the descent skips metadata
    _check_node(schema, obj, old, old is not None, "<root>", errors, descend=False)
    _descend(schema, body, old_body, old is not None, "", errors)
    return errors
