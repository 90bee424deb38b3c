"""tests/kubeapi/cel.py: x-kubernetes-validations evaluated with cel-python as the API server
binds them (self, oldSelf, transition rules, messages, fieldPath, reason, list correlation)."""

from __future__ import annotations

import pytest
from kubeapi import cel

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.min <= self.max", "messageExpression":
                 "'min ' + string(self.min) + ' exceeds max ' + string(self.max)",
                 "fieldPath": ".min"},
                {"rule": "!has(self.name) || self.name.startsWith('x')", "reason":
                 "FieldValueForbidden"},
                {"rule": "self.min >= 0"},
            ],
            "properties": {
                "min": {"type": "integer"}, "max": {"type": "integer"},
                "name": {"type": "string"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object",
                                    "x-kubernetes-validations": [
                                        {"rule": "self.port == oldSelf.port",
                                         "message": "port is immutable"}],
                                    "properties": {"name": {"type": "string"},
                                                   "port": {"type": "integer"}}}},
                "tags": {"type": "array", "items": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": "self != oldSelf",
                                                  "message": "never"}]}},
            },
        },
    },
}


def obj(**spec):
    return {"apiVersion": "x.io/v1", "kind": "X", "metadata": {"name": "a"}, "spec": spec}


def test_message_expression_and_field_path():
    assert cel.validate(obj(min=5, max=3), SCHEMA, None) == [
        ("spec.min", 'Invalid value: "object": min 5 exceeds max 3')]


def test_reason_and_default_message():
    assert cel.validate(obj(min=-1, max=3, name="y"), SCHEMA, None) == [
        ("spec", "Forbidden: failed rule: !has(self.name) || self.name.startsWith('x')"),
        ("spec", 'Invalid value: "object": failed rule: self.min >= 0')]


def test_transition_rule_on_map_list_items_correlated_by_key():
    old = obj(min=0, max=1, ports=[{"name": "a", "port": 1}])
    moved = obj(min=0, max=1, ports=[{"name": "b", "port": 9}, {"name": "a", "port": 2}])
    assert cel.validate(moved, SCHEMA, None) == []  # create: no oldSelf anywhere
    assert cel.validate(moved, SCHEMA, old) == [
        ("spec.ports[1]", 'Invalid value: "object": port is immutable')]


def test_no_correlation_inside_atomic_lists():
    old = obj(min=0, max=1, tags=["a"])
    assert cel.validate(obj(min=0, max=1, tags=["a"]), SCHEMA, old) == []


def test_an_evaluation_error_is_reported_on_the_node():
    errors = cel.validate(obj(max=1), SCHEMA, None)  # no min: self.min fails to evaluate
    assert errors and all(path == "spec" or path == "spec.min" for path, _ in errors)
    assert any("evaluating rule: self.min <= self.max" in m for _, m in errors)


def test_a_rule_that_does_not_compile():
    bad = {"type": "object", "properties": {"spec": {"type": "object",
           "x-kubernetes-validations": [{"rule": "self.a >"}]}}}
    with pytest.raises(cel.CelCompileError, match=r"properties\[spec\]"
                       r"\.x-kubernetes-validations\[0\]\.rule"):
        cel.compile_rules(bad)
