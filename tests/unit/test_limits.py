"""BFD timers: one range (model/limits.py) for the spec, the NB BFD row and the gateway agent."""

from __future__ import annotations

import copy

import pytest

from vegd.gateway import settings as agent_settings
from vegd.model import limits
from vegd.model.errors import ValidationError
from vegd.model.parse import parse_gateway
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.plan import rows
from vegd.plan.gateway import plan_gateway
from vegd.plan.settings import PlanSettings
from vegd.source.yamldir import read_manifests
from vegd.workload.deployment import WorkloadOptions, agent_env

SEED = "examples/seed"


def _gateway2(**bfd):
    objs = [copy.deepcopy(o) for _, o in read_manifests(SEED)]
    gw = next(o for o in objs if o["kind"] == "VpcEgressGateway"
              and o["metadata"]["name"] == "gateway2")
    gw["spec"]["bfd"] = {"enabled": True, **bfd}
    return objs, gw


def test_the_agent_checks_the_ranges_the_model_decided():
    assert agent_settings.INTERVAL_RANGE == limits.BFD_INTERVAL_RANGE
    assert agent_settings.MULTIPLIER_RANGE == limits.BFD_MULTIPLIER_RANGE


@pytest.mark.parametrize("timers", [{"minTX": 10, "minRX": 60000, "multiplier": 2},
                                    {"minTX": 60000, "minRX": 10, "multiplier": 255}])
def test_nb_and_the_agent_get_the_same_timers(timers):
    objs, _ = _gateway2(**timers)
    snap = snapshot_from_objects(objs)
    resolved = resolve_gateway(snap.gateway("default/gateway2"), snap)
    desired = plan_gateway(resolved, snap, PlanSettings("vegd", "stock", True))
    bfd_rows = [r for r in desired.rows if isinstance(r, rows.Bfd)]
    assert bfd_rows
    env = {e["name"]: e["value"] for e in agent_env(resolved, snap, WorkloadOptions())}
    agent = (int(env["VEGD_GATEWAY_BFD_MIN_TX"]), int(env["VEGD_GATEWAY_BFD_MIN_RX"]),
             int(env["VEGD_GATEWAY_BFD_MULTIPLIER"]))
    assert agent == (timers["minTX"], timers["minRX"], timers["multiplier"])
    for row in bfd_rows:
        # the NB row is OVN's end of the session: it receives at the rate the instance sends
        assert (row.min_rx, row.min_tx, row.detect_mult) == agent


@pytest.mark.parametrize("field,value,bounds", [
    ("minTX", 9, "10..60000"), ("minRX", 60001, "10..60000"), ("multiplier", 1, "2..255"),
    ("multiplier", 256, "2..255"), ("minRX", 0, "1..3600000")])
def test_timers_frr_cannot_run_are_refused_naming_the_field(field, value, bounds):
    _, gw = _gateway2(**{field: value})
    with pytest.raises(ValidationError) as err:
        parse_gateway(gw)
    assert err.value.field == f"spec.bfd.{field}"
    assert bounds in err.value.message
