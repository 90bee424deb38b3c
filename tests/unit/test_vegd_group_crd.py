"""deploy/vegd-group/: vegd's CRD under vegd.io is the kubeovn.io one with only the group and
short names changed (scripts/vegd-group-crd writes it), and RBAC covers both groups."""

from __future__ import annotations

import importlib.util
from importlib.machinery import SourceFileLoader
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    path = str(ROOT / "scripts" / "vegd-group-crd")
    loader = SourceFileLoader("vegd_group_crd", path)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return mod


def test_vegd_group_crd_is_current():
    gen = _generator()
    assert gen.TARGET.read_text() == gen.render(gen.SOURCE.read_text()), \
        "run scripts/vegd-group-crd"


def test_vegd_group_crd_differs_only_in_group_and_names():
    ours = yaml.safe_load((ROOT / "deploy/vegd-group/vpc-egress-gateway.yaml").read_text())
    base = yaml.safe_load((ROOT / "deploy/crds/vpc-egress-gateway.yaml").read_text())
    assert ours["metadata"]["name"] == "vpc-egress-gateways.vegd.io"
    assert ours["spec"]["group"] == "vegd.io"
    assert ours["spec"]["names"]["shortNames"] == ["vegd-veg", "vveg"]
    for doc in (ours, base):
        del doc["metadata"]["name"], doc["spec"]["group"], doc["spec"]["names"]["shortNames"]
    assert ours == base


def test_rbac_covers_the_vegd_group():
    docs = list(yaml.safe_load_all((ROOT / "deploy/rbac.yaml").read_text()))
    role = next(d for d in docs if d and d["kind"] == "ClusterRole")
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"]
              for r in rule["resources"]}
    for res in ("vpc-egress-gateways", "vpc-egress-gateways/status"):  # no scale: unused
        assert grants[("vegd.io", res)] == grants[("kubeovn.io", res)]


def test_api_group_setting():
    import pytest

    from vegd.config import ConfigError, load_settings

    assert load_settings(environ={}).api_group == "kubeovn.io"
    assert load_settings(environ={"VEGD_API_GROUP": "vegd.io"}).api_group == "vegd.io"
    for bad in ("vegd", "Vegd.io", "vegd_io.x"):
        with pytest.raises(ConfigError, match="api_group"):
            load_settings(environ={"VEGD_API_GROUP": bad})
