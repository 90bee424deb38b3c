"""Parsing of Kube-OVN's 2026 gateway fields: bandwidth rates, resources, podAntiAffinity,
IPPools and observability; and what the workload renders from them."""

from __future__ import annotations

import copy
import ipaddress

import pytest

from vegd.model.errors import ValidationError
from vegd.model.observability import observability_spec, parse_observability
from vegd.model.parse import parse_gateway, parse_ip_pool
from vegd.model.quantities import bandwidth_mbps, parse_resources

BASE = {"metadata": {"name": "gw", "namespace": "default"},
        "spec": {"externalSubnet": "ext", "policies": [{"snat": True, "ipBlocks": ["10.0.0.0/8"]}]}}


def gateway(**spec):
    raw = copy.deepcopy(BASE)
    raw["spec"].update(spec)
    return parse_gateway(raw)


@pytest.mark.parametrize(("raw", "mbps"), [
    (None, 0), (0, 0), (100, 100), ("250", 250), ("500M", 500), ("1.5G", 1500),
    ("1Gi", 1074), ("100Mi", 105), (".5M", 1), ("1M", 1), (9223372036854, 9223372036854)])
def test_bandwidth_rates_are_kube_ovns(raw, mbps):
    assert bandwidth_mbps(raw, "o", "f") == mbps


@pytest.mark.parametrize("raw", ["10Kbps", "1K", "-1", "1.5", "", "1 G", -1, 9223372036855,
                                 True, 1.5])
def test_bad_bandwidth_rates_are_refused(raw):
    with pytest.raises(ValidationError):
        bandwidth_mbps(raw, "o", "spec.bandwidth.egress")


def test_bandwidth_and_anti_affinity_in_the_model():
    gw = gateway(bandwidth={"ingress": "1Gi", "egress": 20}, podAntiAffinity="Preferred")
    assert (gw.bandwidth_ingress, gw.bandwidth_egress) == (1074, 20)
    assert gw.pod_anti_affinity == "Preferred"
    assert gateway().pod_anti_affinity == "Required"
    with pytest.raises(ValidationError, match="podAntiAffinity"):
        gateway(podAntiAffinity="Sometimes")


def test_resources_are_checked_and_kept():
    assert parse_resources(None, "o") == ""
    text = parse_resources({"requests": {"cpu": "100m"}, "limits": {"cpu": 1}}, "o")
    assert text == '{"limits": {"cpu": 1}, "requests": {"cpu": "100m"}}'
    with pytest.raises(ValidationError, match="more than its limit"):
        parse_resources({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}, "o")
    with pytest.raises(ValidationError, match="not a quantity"):
        parse_resources({"requests": {"cpu": "lots"}}, "o")
    with pytest.raises(ValidationError, match="unknown"):
        parse_resources({"request": {}}, "o")


def test_ip_lists_and_pools_exclude_each_other():
    assert gateway(internalIPPool="p").internal_ip_pool == "p"
    with pytest.raises(ValidationError, match="internalIPs and internalIPPool are mutually"):
        gateway(internalIPs=["10.16.0.2"], internalIPPool="p")
    with pytest.raises(ValidationError, match="externalIPs and externalIPPool are mutually"):
        gateway(externalIPs=["10.16.0.2"], externalIPPool="p")


def test_ip_pool_ranges_and_status():
    pool = parse_ip_pool({"metadata": {"name": "p"}, "spec": {
        "subnet": "s", "ips": ["10.0.0.5", "10.0.1.0/30", "10.0.2.1..10.0.2.9"]},
        "status": {"v4AvailableIPs": "3"}})
    assert pool.contains(ipaddress.ip_address("10.0.2.9"))
    assert not pool.contains(ipaddress.ip_address("10.0.2.10"))
    assert pool.free(4) == 3 and pool.free(6) is None
    with pytest.raises(ValidationError):
        parse_ip_pool({"metadata": {"name": "p"}, "spec": {"ips": ["10.0.0.9..10.0.0.1"]}})


def test_observability_defaults_bounds_and_round_trip():
    off = parse_observability(None, "o")
    assert not off.conntrack_events and not off.log.enabled
    assert off.log.events == ("start", "end")
    assert (off.log.records_per_second, off.log.burst) == (100, 1000)
    spec = {"interfaceMetrics": {"enabled": True},
            "conntrack": {"log": {"enabled": True, "events": ["end"],
                                  "filters": {"exclude": [{"protocols": ["udp"], "translated": {
                                      "destinationPorts": [{"start": 53, "end": 53}]}}]}}}}
    on = parse_observability(spec, "o")
    assert on.conntrack_events and on.log.events == ("end",)
    assert parse_observability(observability_spec(on), "o") == on
    for bad in ({"conntrack": {"log": {"rateLimit": {"recordsPerSecond": 0}}}},
                {"conntrack": {"log": {"events": ["start", "middle"]}}},
                {"conntrack": {"log": {"filters": {"include": [{"protocols": ["gre"]}]}}}},
                {"conntrack": {"log": {"filters": {"include": [{"original": {
                    "sourcePorts": [{"start": 2, "end": 1}]}}]}}}},
                {"conntrack": {"log": {"filters": {"include": [{}] * 65}}}}):
        with pytest.raises(ValidationError):
            parse_observability(bad, "o")


def test_observability_condition_only_while_on_and_never_gating_ready():
    from vegd.workload import status as ws

    off = gateway()
    on = gateway(observability={"conntrack": {"log": {"enabled": True}}})
    now = "2026-12-01T00:00:00Z"
    assert [c["type"] for c in ws.gateway_status(off, now=now, observability_error="")[
        "conditions"]] == ["Ready", "Validated"]
    (cond,) = [c for c in ws.gateway_status(on, now=now, observability_error="")["conditions"]
               if c["type"] == "ObservabilityConfigured"]
    assert (cond["status"], cond["reason"]) == ("True", "ConfigMapUpToDate")
    assert "translation records in ConfigMap default/gw-observability" in cond["message"]
    failed = ws.gateway_status(on, now=now, observability_error="forbidden")
    (cond,) = [c for c in failed["conditions"] if c["type"] == "ObservabilityConfigured"]
    assert (cond["status"], cond["reason"], cond["message"]) == \
        ("False", "ConfigMapReconcileFailed", "forbidden")
    # not written in this reconcile (invalid spec, or before the workload): no claim either way
    assert len(ws.gateway_status(on, now=now)["conditions"]) == 2
