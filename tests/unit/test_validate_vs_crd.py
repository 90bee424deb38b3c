"""vegd's hand-written field checks (model/parse.py) against the CRD's openAPIV3Schema (checked
with jsonschema, as the API server would): for VpcEgressGateway field types, enums and ranges
both refuse the same inputs, so `vegd apply` (no API server) refuses what `kubectl apply` would.
Where vegd is stricter on purpose (FRR's BFD timer ranges, model/limits.py) it is listed."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from kubeapi import schema as crd_schema

from vegd.model.errors import ValidationError
from vegd.model.parse import parse_gateway

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
           "metadata": {"name": "g", "namespace": "default"},
           "spec": {"vpc": "vpc1", "replicas": 2, "internalSubnet": "subnet1",
                    "externalSubnet": "macvlan1", "bfd": {"enabled": True},
                    "policies": [{"snat": True, "ipBlocks": ["192.168.0.0/24"]}],
                    "selectors": [{"podSelector": {"matchLabels": {"app": "web"}}}]}}


@pytest.fixture(scope="module")
def schema() -> dict:
    crd = next(yaml.safe_load_all((ROOT / "deploy/crds/vpc-egress-gateway.yaml").read_text()))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _crd_refuses(obj: dict, schema: dict) -> bool:
    body = crd_schema.process_custom({k: v for k, v in copy.deepcopy(obj).items()
                                      if k != "metadata"}, schema)
    body["metadata"] = obj["metadata"]
    return bool(crd_schema.validate(body, schema))


def _vegd_refuses(obj: dict) -> bool:
    try:
        parse_gateway(obj)
    except ValidationError:
        return True
    return False


def _with(**spec) -> dict:
    obj = copy.deepcopy(GATEWAY)
    for path, value in spec.items():
        node = obj["spec"]
        *parents, last = path.split("__")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
    return obj


_DROP = object()
BOTH_REFUSE = {
    "replicas string": _with(replicas="2"), "replicas bool": _with(replicas=True),
    "replicas -1": _with(replicas=-1), "replicas 11": _with(replicas=11),
    "vpc number": _with(vpc=1), "internalSubnet list": _with(internalSubnet=["a"]),
    "externalSubnet missing": _with(externalSubnet=_DROP), "image map": _with(image={"a": 1}),
    "bfd string": _with(bfd="on"), "bfd.enabled string": _with(bfd__enabled="true"),
    "bfd.minTX string": _with(bfd__minTX="fast"), "bfd.minRX 0": _with(bfd__minRX=0),
    "bfd.multiplier 4e6": _with(bfd__multiplier=4_000_000), "bfdMode": _with(bfdMode="fast"),
    "trafficPolicy": _with(trafficPolicy="Nearest"), "policies string": _with(policies="all"),
    "policy string": _with(policies=["all"]), "ipBlocks string": _with(policies__0__ipBlocks="x"),
    "snat string": _with(policies__0__snat="yes"), "selectors map": _with(selectors={}),
    "podSelector string": _with(selectors__0__podSelector="app=web"),
    "nodeSelector string": _with(nodeSelector="zone=a"), "tolerations map": _with(tolerations={}),
    "toleration string": _with(tolerations=["NoSchedule"]),
    "internalIPs string": _with(internalIPs="192.168.0.5"),
}
# accepted by the CRD (Kube-OVN's ranges), refused by vegd: FRR's bfdd cannot run them
VEGD_STRICTER = {
    "bfd.minTX 5": _with(bfd__minTX=5), "bfd.minRX 100000": _with(bfd__minRX=100_000),
    "bfd.multiplier 1": _with(bfd__multiplier=1),
}


def test_both_accept_the_base_gateway(schema):
    assert not _crd_refuses(GATEWAY, schema) and not _vegd_refuses(GATEWAY)


@pytest.mark.parametrize("case", sorted(BOTH_REFUSE))
def test_vegd_refuses_what_the_crd_refuses(schema, case):
    assert _crd_refuses(BOTH_REFUSE[case], schema)
    assert _vegd_refuses(BOTH_REFUSE[case])


@pytest.mark.parametrize("case", sorted(VEGD_STRICTER))
def test_vegd_is_stricter_only_where_frr_is(schema, case):
    assert not _crd_refuses(VEGD_STRICTER[case], schema)
    assert _vegd_refuses(VEGD_STRICTER[case])
