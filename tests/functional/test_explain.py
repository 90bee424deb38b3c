"""`vegd explain` and `vegd status` against a real NB + northd after `vegd apply` of the seed:
selected by policy, selected by selector, not selected, other VPC, invalid gateway,
trafficPolicy Local, one BFD session down, every instance down (fail closed)."""

from __future__ import annotations

import json

import pytest
from ovnstack import wait_for
from scenario import SEED, add_base_topology, gateway_pod, pod
from test_controller import GATEWAY1, Env
from test_fail_closed_trace import set_sessions
from vegd_harness import InProcessController, write_kubeconfig

from vegd.cli import main as vegd_main

pytest_plugins = ["kubeapi.fixture", "kubelet"]

SHOP = pod("shop", "10.16.0.50", node="kube-ovn-worker2")  # in ovn-default: gateway1's source
INNER = pod("inner", "192.168.0.50")  # in subnet1: gateway2's source (BFD)
WEB = pod("web", "192.168.1.20", labels={"app": "web"})  # subnet2 of vpc1, chosen by gateway3
OTHER = pod("other", "192.168.1.21", labels={"app": "db"})  # subnet2, chosen by nobody
SUBNET2 = {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "subnet2"},
           "spec": {"vpc": "vpc1", "protocol": "IPv4", "cidrBlock": "192.168.1.0/24",
                    "gateway": "192.168.1.1"}}
GATEWAY3 = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
            "metadata": {"name": "gateway3", "namespace": "default"},
            "spec": {"vpc": "vpc1", "replicas": 1, "internalSubnet": "subnet1",
                     "externalSubnet": "macvlan1",
                     "selectors": [{"podSelector": {"matchLabels": {"app": "web"}}}]}}
BROKEN = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
          "metadata": {"name": "broken", "namespace": "default"},
          "spec": {"vpc": "ovn-cluster", "replicas": 1, "externalSubnet": "macvlan1",
                   "bfd": {"enabled": True},  # the default VPC has no bfdPort
                   "policies": [{"snat": True, "ipBlocks": ["10.99.0.0/16"]}]}}


@pytest.fixture
def cluster(seed, capsys):
    seed.objects += [SHOP, INNER, WEB, OTHER, SUBNET2, GATEWAY3,
                     gateway_pod("gateway3", 0, "192.168.0.4", "172.17.0.15", "kube-ovn-worker",
                                 "subnet1")]
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    return seed


def explain(seed, capsys, *args: str) -> dict:
    code = vegd_main(["explain", *args, "-f", str(seed.dir / f"manifests-{seed.runs}"),
                      "--nb-connection", seed.ovn.nb_unix, "--output", "json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def verdict(answer: dict, gateway: str) -> dict:
    return next(v for v in answer["verdicts"] if v["gateway"] == gateway)


def test_selected_by_policy(cluster, capsys):
    answer = explain(cluster, capsys, "pod", "default/shop")
    assert answer["vpc"] == "ovn-cluster" and answer["ips"] == ["10.16.0.50"]
    v = verdict(answer, "default/gateway1")
    assert (v["outcome"], v["via"], v["mode"]) == ("egress", "policy", "snat")
    (row,) = v["rows"]
    assert row == {"table": "Logical_Router_Policy", "priority": 29100, "action": "reroute",
                   "match": "ip4.src == 10.16.0.0/16", "nexthops": ["10.16.0.12", "10.16.0.13"],
                   "in_nb": True}
    assert [(h["ip"], h["bfd"]) for h in v["nexthops"]] == [("10.16.0.12", "off"),
                                                           ("10.16.0.13", "off")]
    assert v["egress_ips"] == ["172.17.0.11", "172.17.0.12"]
    assert verdict(answer, "default/gateway2")["reason"].startswith("other VPC")
    assert "egresses through default/gateway1" in answer["summary"]


def test_selected_by_selector_and_not_selected(cluster, capsys):
    answer = explain(cluster, capsys, "pod", "default/web")
    v = verdict(answer, "default/gateway3")
    assert (v["outcome"], v["via"], v["mode"]) == ("egress", "selector", "snat")
    tables = [(r["table"], r["priority"]) for r in v["rows"]]
    assert tables == [("Address_Set", None), ("Logical_Router_Policy", 29100)]
    assert v["rows"][1]["match"].startswith("ip4.src == $VEG.") and v["rows"][1]["in_nb"]
    assert v["egress_ips"] == ["172.17.0.15"]
    assert verdict(answer, "default/gateway2")["outcome"] == "not-selected"

    answer = explain(cluster, capsys, "pod", "default/other")
    assert all(v["outcome"] == "not-selected" for v in answer["verdicts"])
    assert verdict(answer, "default/gateway3")["reason"].startswith("no policy prefix and no "
                                                                     "selector")
    assert "selected by no gateway" in answer["summary"]


def test_bfd_one_session_down_then_all_down(cluster, capsys):
    set_sessions(cluster.ovn, "bfd@vpc1", {"192.168.0.2": "up", "192.168.0.3": "down"})
    answer = explain(cluster, capsys, "pod", "default/inner")
    v = verdict(answer, "default/gateway2")
    assert v["outcome"] == "egress" and v["mode"] == "snat"
    assert {h["ip"]: h["bfd"] for h in v["nexthops"]} == {"192.168.0.2": "up",
                                                          "192.168.0.3": "down"}
    assert v["egress_ips"] == ["172.17.0.13"]  # only the instance whose session is up
    tables = {(r["table"], r["priority"], r["action"]) for r in v["rows"]}
    assert ("Logical_Router_Policy", 29090, "drop") in tables  # the fail-closed backstop
    assert ("Logical_Router_Static_Route", None, "route (src-ip)") in tables

    set_sessions(cluster.ovn, "bfd@vpc1", {"192.168.0.2": "down", "192.168.0.3": "down"})
    answer = explain(cluster, capsys, "--ip", "192.168.0.50")
    v = verdict(answer, "default/gateway2")
    assert v["outcome"] == "fail-closed" and "every instance's BFD session is down" in v["reason"]
    assert v["egress_ips"] == []
    assert "traffic is dropped" in answer["summary"]


def test_no_instance_fails_closed_and_invalid_gateway_is_named(seed, capsys):
    seed.objects = [o for o in seed.objects if not (
        o["kind"] == "Pod" and o["metadata"]["name"].startswith("gateway1"))]
    seed.objects.append(SHOP)
    assert seed.apply(capsys=capsys)[0] == 0
    seed.objects.append(BROKEN)
    seed.write()  # explain reads what apply would refuse: the gateway is reported invalid
    answer = explain(seed, capsys, "pod", "default/shop")
    v = verdict(answer, "default/gateway1")
    assert v["outcome"] == "fail-closed" and "no instance is running" in v["reason"]
    assert [(r["priority"], r["action"], r["in_nb"]) for r in v["rows"]] == [
        (29090, "drop", True)]
    broken = verdict(answer, "default/broken")
    assert broken["outcome"] == "not-selected"
    assert broken["reason"].startswith("gateway invalid: spec.bfd.enabled: BFD is on but VPC "
                                       "ovn-cluster has no enabled bfdPort")
    assert verdict(answer, "default/gateway2")["reason"].startswith("other VPC: the gateway "
                                                                     "serves VPC vpc1")


def test_traffic_policy_local(seed, capsys):
    seed.find("VpcEgressGateway", "gateway1")["spec"]["trafficPolicy"] = "Local"
    seed.objects.append(pod("near", "10.16.0.60", node="kube-ovn-worker"))
    assert seed.apply(capsys=capsys)[0] == 0
    answer = explain(seed, capsys, "pod", "default/near")
    v = verdict(answer, "default/gateway1")
    assert v["outcome"] == "egress" and v["local_node"] == "kube-ovn-worker"
    assert v["egress_ips"] == ["172.17.0.11"]  # the instance on the pod's node
    assert [(r["table"], r["priority"]) for r in v["rows"]][:2] == [
        ("Address_Set", None), ("Logical_Router_Policy", 29150)]
    assert all(r["in_nb"] for r in v["rows"])


def test_text_output_and_status(cluster, capsys):
    set_sessions(cluster.ovn, "bfd@vpc1", {"192.168.0.2": "up", "192.168.0.3": "down"})
    manifests = str(cluster.dir / f"manifests-{cluster.runs}")
    assert vegd_main(["explain", "pod", "default/inner", "-f", manifests, "--nb-connection",
                      cluster.ovn.nb_unix]) == 0
    text = capsys.readouterr().out
    assert "default/gateway2: egress (by policy, snat)" in text
    assert "nexthop 192.168.0.3 (default/gateway2-fcc6b8b87-8lgvx on kube-ovn-worker2): " \
        "BFD down, external 172.17.0.14" in text, text
    assert "row: Logical_Router_Policy priority 29090 drop match 'ip4.src == 192.168.0.0/24" \
        in text, text
    assert vegd_main(["status", "-f", manifests, "--nb-connection", cluster.ovn.nb_unix,
                      "--output", "json"]) == 0
    statuses = {s["gateway"]: s for s in json.loads(capsys.readouterr().out)}
    g2 = statuses["default/gateway2"]
    assert g2["valid"] and g2["bfd"]
    assert {h["ip"]: h["bfd"] for h in g2["nexthops"]} == {"192.168.0.2": "up",
                                                           "192.168.0.3": "down"}
    assert g2["rows"]["BFD"] == 2 and g2["rows"]["Logical_Router_Static_Route"] == 2
    assert statuses["default/gateway1"]["rows"]["Logical_Router_Policy"] == 1
    assert vegd_main(["explain", "pod", "default/nope", "-f", manifests, "--nb-connection",
                      cluster.ovn.nb_unix]) == 1
    assert "pod default/nope not found" in capsys.readouterr().err


def test_explain_reads_the_cluster(fresh_ovn, kubeapi, fake_cluster, tmp_path, capsys):
    """From the API server (kubeconfig) while `vegd run`'s controller keeps NB in step."""
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    vegd = InProcessController(kubeapi, fresh_ovn).start()
    try:
        env = Env(fresh_ovn, kubeapi, fake_cluster, vegd)
        env.create_gateway("gateway1", GATEWAY1)
        fake_cluster.wait_pods("gateway1", 2, timeout=15)
        fake_cluster.add_pod("shop", ip="10.16.0.77", node="kube-ovn-worker")
        wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16"), 10, what="rows")
        wait_for(vegd.idle, 10, what="reconciled")
        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kubeapi.url)
        code = vegd_main(["explain", "pod", "default/shop", "--kubeconfig", str(kubeconfig),
                          "--nb-connection", fresh_ovn.nb_unix, "--output", "json"])
        out = capsys.readouterr()
        assert code == 0, out.err
        v = verdict(json.loads(out.out), "default/gateway1")
        assert (v["outcome"], v["via"], v["mode"]) == ("egress", "policy", "snat")
        assert len(v["nexthops"]) == 2 and len(v["egress_ips"]) == 2
        assert [r["in_nb"] for r in v["rows"]] == [True]
    finally:
        vegd.stop()
