"""The controller's /livez, /readyz and /metrics after real reconciles: histogram buckets,
counters, owned rows and per-instance BFD state gauges for an up and a down session."""

from __future__ import annotations

import urllib.request

import pytest
from metricsdoc import assert_documented
from ovnstack import wait_for
from prometheus_client.parser import text_string_to_metric_families
from scenario import SEED, add_base_topology
from test_controller import GATEWAY2, Env
from vegd_harness import InProcessController

from vegd import probes
from vegd.run import _checks

pytest_plugins = ["kubeapi.fixture", "kubelet"]


def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def served(fresh_ovn, kubeapi, fake_cluster):
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    vegd = InProcessController(kubeapi, fresh_ovn).start()
    server = probes.serve("127.0.0.1", 0, vegd.controller.metrics.registry,
                          *_checks(vegd.controller))
    try:
        wait_for(lambda: vegd.stats.active, 10, what="vegd active")
        yield Env(fresh_ovn, kubeapi, fake_cluster, vegd), f"http://127.0.0.1:{server.server_port}"
    finally:
        probes.stop(server)
        vegd.stop()


def test_metrics_after_reconciles(served):
    env, base = served
    assert urllib.request.urlopen(f"{base}/livez").status == 200
    assert urllib.request.urlopen(f"{base}/readyz").status == 200
    env.custom.patch_cluster_custom_object("kubeovn.io", "v1", "vpcs", "vpc1", {"spec": {
        "bfdPort": {"nodeSelector": {"matchLabels": {"bfd": "yes"}}}}})
    env.cluster.label_node("kube-ovn-worker", {"bfd": "yes"})
    env.create_gateway("gateway2", GATEWAY2)
    pods = env.cluster.wait_pods("gateway2", 2, timeout=15)
    up_ip, down_ip = sorted(p["status"]["podIP"] for p in pods)
    wait_for(lambda: sorted(r["dst_ip"] for r in env.rows("BFD")
                            if r["logical_port"] == "bfd@vpc1") == [up_ip, down_ip], 10,
             what="one BFD row per instance")
    # ovn-controller reports session state in SB; northd copies it to NB BFD.status
    for ip, state in ((up_ip, "up"), (down_ip, "down")):
        sb_uuid = wait_for(lambda ip=ip: env.ovn.sbctl("--bare", "--columns=_uuid", "find",
                                                       "BFD", f"dst_ip={ip}").split(), 10,
                           what="ovn-northd's SB BFD row")[0]
        env.ovn.sbctl("set", "BFD", sb_uuid, f"status={state}")
    labels = {"namespace": "default", "gateway": "gateway2"}
    samples = wait_for(lambda: (m := scrape(base)) and value(
        m, "vegd_bfd_session_up", **labels, nexthop=up_ip) == 1 and m, 10,
        what="the up session on /metrics")
    assert value(samples, "vegd_bfd_session_up", **labels, nexthop=down_ip) == 0
    assert value(samples, "vegd_bfd_session_state", **labels, nexthop=down_ip, state="down") == 1
    assert value(samples, "vegd_bfd_session_state", **labels, nexthop=down_ip, state="up") == 0
    assert value(samples, "vegd_bfd_session_state", **labels, nexthop=up_ip, state="up") == 1

    wait_for(env.vegd.idle, 10, what="reconciles done")
    samples = scrape(base)
    ok = {"kind": "gateway", "outcome": "ok"}
    count = value(samples, "vegd_reconcile_duration_seconds_count", **ok)
    assert count and count >= 1
    assert value(samples, "vegd_reconcile_duration_seconds_bucket", **ok, le="+Inf") == count
    assert value(samples, "vegd_reconcile_duration_seconds_bucket", **ok, le="0.001") <= count
    assert (value(samples, "vegd_reconcile_duration_seconds_count", kind="vpc", outcome="ok")
            or 0) >= 1
    assert value(samples, "vegd_nb_transactions_total") >= 1
    assert value(samples, "vegd_nb_owned_rows", table="BFD") == 3  # 2 instances, 1 of the VPC
    assert value(samples, "vegd_nb_owned_rows", table="Logical_Router_Policy") >= 1
    assert value(samples, "vegd_leader") == 1
    assert value(samples, "vegd_workqueue_depth") == 0
    assert value(samples, "vegd_workqueue_oldest_item_age_seconds") == 0
    assert value(samples, "vegd_full_resyncs_total") >= 1
    assert value(samples, "vegd_last_full_resync_timestamp_seconds") > 0
    assert value(samples, "vegd_kube_relists_total", kind="VpcEgressGateway") == 0
    assert ("vegd_kube_watch_restarts_total",
            (("kind", "VpcEgressGateway"),)) in samples


    # watches cut: each informer restarts its watch; history compacted: 410 Gone, a relist
    env.kubeapi.compact()
    assert env.kubeapi.drop_watches() >= 1
    gw = ("kind", "VpcEgressGateway")
    wait_for(lambda: (scrape(base).get(("vegd_kube_watch_restarts_total", (gw,))) or 0) >= 1, 10,
             what="a watch restart counted")
    wait_for(lambda: (scrape(base).get(("vegd_kube_relists_total", (gw,))) or 0) >= 1, 10,
             what="a relist counted")
    assert urllib.request.urlopen(f"{base}/metrics").headers["Content-Type"].startswith(
        "text/plain")
    assert_documented(scrape(base))

