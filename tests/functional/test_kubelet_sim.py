"""The kubelet/ReplicaSet/CNI stand-in (`kubelet.FakeCluster`) against the in-process API server:
scheduling, addressing, scaling, rolling updates, watch disruptions, and pods vegd's model
accepts as gateway instances."""

from __future__ import annotations

import ipaddress
import json
import re

import pytest
from kubelet import HASH_LABEL, NETWORK_STATUS, SEED, FakeCluster, NoAddress
from kubelet_ipam import Ipam, attachments, nad_providers
from kubelet_rules import rolling_limits, template_hash
from kubernetes import client

from vegd.model.instances import workload
from vegd.model.objects import GATEWAY_LABEL
from vegd.model.parse import parse_pod
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects

pytest_plugins = ["kubeapi.fixture", "kubelet"]

NS = "default"
NAME_RE = re.compile(r"^gateway1-[bcdfghjklmnpqrstvwxz2456789]+-[bcdfghjklmnpqrstvwxz2456789]{5}$")


def gateway_deployment(name: str = "gateway1", replicas: int = 2, annotations: dict | None = None,
                       node_terms: list | None = None) -> dict:
    """Shaped like the Deployment vegd makes for a gateway (design section 4)."""
    labels = {"app": "vpc-egress-gateway", GATEWAY_LABEL: name}
    affinity: dict = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}}
    if node_terms:
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": node_terms}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels, "annotations": {
                    "ovn.kubernetes.io/logical_switch": "ovn-default",
                    "k8s.v1.cni.cncf.io/networks": "default/eth1", **(annotations or {})}},
                "spec": {"containers": [{"name": "gateway", "image": "vegd:test"}],
                         "affinity": affinity, "terminationGracePeriodSeconds": 0},
            },
        },
    }


@pytest.fixture
def cluster(fake_cluster: FakeCluster) -> FakeCluster:
    """The seed's nodes, subnets and attachment (not its pods)."""
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    return fake_cluster


@pytest.fixture
def apps(kubeapi) -> client.AppsV1Api:
    return client.AppsV1Api(kubeapi.api_client())


def ips(pod: dict) -> list:
    return [ipaddress.ip_address(e["ip"]) for e in pod["status"]["podIPs"]]


def networks(pod: dict) -> dict:
    return {n["name"]: n for n in json.loads(pod["metadata"]["annotations"][NETWORK_STATUS])}


def scale(apps, replicas: int, name: str = "gateway1") -> None:
    apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": replicas}})


def test_replicas_run_on_distinct_nodes_with_addresses_and_network_status(cluster, apps):
    dep = apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    pods = cluster.wait_pods("gateway1", 2)

    assert len({p["spec"]["nodeName"] for p in pods}) == 2
    macvlan = ipaddress.ip_network("172.17.0.0/16")
    for pod in pods:
        meta, status = pod["metadata"], pod["status"]
        assert NAME_RE.match(meta["name"]), meta["name"]
        assert meta["name"].split("-")[1] == meta["labels"][HASH_LABEL]
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == \
            ("Deployment", dep.metadata.uid, True)
        [ip] = ips(pod)
        assert ip in ipaddress.ip_network("10.16.0.0/16") and str(ip) != "10.16.0.1"
        assert status["podIP"] == str(ip) and status["hostIP"] and status["startTime"]
        assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
        ann = meta["annotations"]
        assert ann["ovn.kubernetes.io/allocated"] == "true"
        assert ann["ovn.kubernetes.io/ip_address"] == str(ip)
        nets = networks(pod)
        assert nets["kube-ovn"]["interface"] == "eth0" and nets["kube-ovn"]["default"] is True
        assert nets["kube-ovn"]["ips"] == [str(ip)]
        ext = ipaddress.ip_address(nets["default/eth1"]["ips"][0])
        assert nets["default/eth1"]["interface"] == "net1" and nets["default/eth1"]["mac"]
        # macvlan1's excludeIps is 172.17.0.0..172.17.0.10
        assert ext in macvlan and ext > ipaddress.ip_address("172.17.0.10")
        assert ann["eth1.default.kubernetes.io/ip_address"] == str(ext)
    assert len({ips(p)[0] for p in pods}) == 2

    def status():
        s = apps.read_namespaced_deployment_status("gateway1", NS).status
        return s.ready_replicas == 2 and s
    s = cluster.wait(status, what="Deployment status")
    assert (s.replicas, s.available_replicas, s.updated_replicas) == (2, 2, 2)
    assert s.observed_generation == dep.metadata.generation
    assert {c.type: c.status for c in s.conditions} == {"Available": "True",
                                                        "Progressing": "True"}


def test_ip_pools_give_the_first_free_entry(cluster, apps):
    # a workload pod already holds the first entry of the internal pool
    cluster.add_pod("holder", ip="10.16.0.20", labels={"app": "web"})
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2, annotations={
        "ovn.kubernetes.io/ip_pool": "10.16.0.20;10.16.0.21;10.16.0.22",
        "eth1.default.kubernetes.io/ip_pool": "172.17.0.100;172.17.0.101;172.17.0.102"}))
    pods = cluster.wait_pods("gateway1", 2)
    assert sorted(str(ips(p)[0]) for p in pods) == ["10.16.0.21", "10.16.0.22"]
    assert sorted(networks(p)["default/eth1"]["ips"][0] for p in pods) == \
        ["172.17.0.100", "172.17.0.101"]

    # the replacement of a killed pod takes the first entry free again: the one it released
    victim = next(p for p in pods if str(ips(p)[0]) == "10.16.0.21")
    cluster.kill_pod(NS, victim["metadata"]["name"])
    pods = cluster.wait_pods("gateway1", 2)
    assert victim["metadata"]["name"] not in {p["metadata"]["name"] for p in pods}
    assert sorted(str(ips(p)[0]) for p in pods) == ["10.16.0.21", "10.16.0.22"]

    # a pool with no free entry leaves the pod Pending, unaddressed
    scale(apps, 3)
    cluster.wait_pods("gateway1", 3, running=False)
    cluster.wait_idle()  # the pass that made the pod has tried to address it
    [pending] = [p for p in cluster.pods("gateway1") if p["status"]["phase"] == "Pending"]
    assert "ovn.kubernetes.io/allocated" not in pending["metadata"]["annotations"]
    assert "no free address in ip_pool" in str(cluster.last_error)


def test_dual_stack_subnet(cluster, apps):
    cluster.apply_yaml("""
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: dual}
spec: {vpc: ovn-cluster, protocol: Dual, cidrBlock: "10.20.0.0/24,fd00:20::/120",
       gateway: "10.20.0.1,fd00:20::1", excludeIps: ["10.20.0.2..10.20.0.4", "fd00:20::2"]}
""")
    pinned = gateway_deployment("gateway1", 1, {
        "ovn.kubernetes.io/logical_switch": "dual",
        "ovn.kubernetes.io/ip_pool": "10.20.0.9,fd00:20::9"})
    free = gateway_deployment("gateway2", 1, {"ovn.kubernetes.io/logical_switch": "dual"})
    apps.create_namespaced_deployment(NS, pinned)
    [pod] = cluster.wait_pods("gateway1", 1)
    apps.create_namespaced_deployment(NS, free)
    [other] = cluster.wait_pods("gateway2", 1)
    assert [str(i) for i in ips(pod)] == ["10.20.0.9", "fd00:20::9"]
    assert [str(i) for i in ips(other)] == ["10.20.0.5", "fd00:20::3"]
    assert networks(other)["kube-ovn"]["ips"] == ["10.20.0.5", "fd00:20::3"]


def test_scale_up_and_down_through_the_scale_subresource(cluster, apps):
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    first = {p["metadata"]["name"] for p in cluster.wait_pods("gateway1", 2)}
    scale(apps, 3)
    pods = cluster.wait_pods("gateway1", 3)
    assert len({p["spec"]["nodeName"] for p in pods}) == 3
    [third] = {p["metadata"]["name"] for p in pods} - first
    scale(apps, 1)
    [survivor] = cluster.wait_pods("gateway1", 1)
    assert survivor["metadata"]["name"] in first  # the newest went first
    assert third != survivor["metadata"]["name"]
    cluster.wait(lambda: apps.read_namespaced_deployment_status("gateway1", NS)
                 .status.replicas == 1, what="status.replicas 1")


def test_a_pod_no_node_fits_stays_pending_until_one_does(cluster, apps):
    cluster.label_node("kube-ovn-worker", {"egress": "true"})
    cluster.label_node("kube-ovn-worker2", {"egress": "true"})
    cluster.add_node("kube-ovn-worker3", {"egress": "true"}, ready=False)
    terms = [{"matchExpressions": [{"key": "egress", "operator": "In", "values": ["true"]}]}]
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=3, node_terms=terms))

    def unschedulable():
        return [p for p in cluster.pods("gateway1")
                if any(c["type"] == "PodScheduled" and c["status"] == "False"
                       for c in p["status"].get("conditions", []))]
    [pending] = cluster.wait(unschedulable, what="an unschedulable pod")
    running = [p for p in cluster.pods("gateway1") if p["status"]["phase"] == "Running"]
    assert sorted(p["spec"]["nodeName"] for p in running) == ["kube-ovn-worker",
                                                              "kube-ovn-worker2"]
    assert "nodeName" not in pending["spec"] and pending["status"]["phase"] == "Pending"
    [cond] = pending["status"]["conditions"]
    assert cond["reason"] == "Unschedulable"
    assert cond["message"].startswith("0/4 nodes are available:")
    assert "node affinity" in cond["message"] and "anti-affinity" in cond["message"]

    cluster.set_node_ready("kube-ovn-worker3", True)  # now the pending pod fits there
    pods = cluster.wait_pods("gateway1", 3)
    assert pending["metadata"]["name"] in {p["metadata"]["name"] for p in pods}
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["kube-ovn-worker", "kube-ovn-worker2",
                                                           "kube-ovn-worker3"]


def test_placed_pods_anti_affinity_keeps_newcomers_away(cluster, apps):
    apps.create_namespaced_deployment(NS, gateway_deployment("gateway1", 1))
    [lonely] = cluster.wait_pods("gateway1", 1)
    other = gateway_deployment("gateway2", 3)
    other["spec"]["template"]["spec"].pop("affinity")  # no terms of its own
    # gateway1's term selects gateway2's pods too
    lonely_term = {"labelSelector": {"matchLabels": {"app": "vpc-egress-gateway"}},
                   "topologyKey": "kubernetes.io/hostname"}
    apps.patch_namespaced_deployment("gateway1", NS, {"spec": {"template": {"spec": {
        "affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [lonely_term]}}}}}})
    [lonely] = cluster.wait_pods("gateway1", 1)
    apps.create_namespaced_deployment(NS, other)
    pods = cluster.wait_pods("gateway2", 3)
    assert lonely["spec"]["nodeName"] not in {p["spec"]["nodeName"] for p in pods}


def test_node_affinity_match_fields_on_the_node_name(cluster, apps):
    terms = [{"matchFields": [{"key": "metadata.name", "operator": "In",
                               "values": ["kube-ovn-worker2"]}]}]
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=1, node_terms=terms))
    [pod] = cluster.wait_pods("gateway1", 1)
    assert pod["spec"]["nodeName"] == "kube-ovn-worker2"

    # an empty NodeSelectorTerm (say, a VEG nodeSelector item converted wrongly) matches no node
    bad = [{}]
    apps.create_namespaced_deployment(NS, gateway_deployment("gateway2", 1, node_terms=bad))
    cluster.wait_pods("gateway2", 1, running=False)
    cond = cluster.wait(lambda: next((c for p in cluster.pods("gateway2")
                                      for c in p["status"].get("conditions", [])
                                      if c["type"] == "PodScheduled"), None),
                        what="PodScheduled condition")
    assert cond["status"] == "False" and "node affinity" in cond["message"]


def test_rolling_update_replaces_one_pod_at_a_time(cluster, apps, kubeapi):
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    old = {p["metadata"]["name"] for p in cluster.wait_pods("gateway1", 2)}
    since = kubeapi.resource_version
    apps.patch_namespaced_deployment("gateway1", NS, {"spec": {"template": {"metadata": {
        "annotations": {"vegd.io/config-hash": "2"}}}}})
    pods = cluster.wait_pods("gateway1", 2)
    assert not old & {p["metadata"]["name"] for p in pods}
    assert all(p["metadata"]["annotations"]["vegd.io/config-hash"] == "2" for p in pods)

    # maxSurge 0 / maxUnavailable 1: replaying the server's event log, never more than 2 pods
    # and never fewer than 1 existed at once
    live, most, least, deleted = set(old), 2, 2, 0
    with kubeapi.store.lock:
        events = [e for e in kubeapi.store.log if e.rv > since and e.rtype == ("", "pods")]
    for e in events:
        if e.type == "ADDED":
            live.add(e.obj["metadata"]["name"])
        elif e.type == "DELETED":
            live.discard(e.obj["metadata"]["name"])
            deleted += 1
        most, least = max(most, len(live)), min(least, len(live))
    assert (most, least, deleted) == (2, 1, 2)


def test_watch_drop_410_and_restart_lose_no_change(cluster, apps, kubeapi):
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=1))
    cluster.wait_pods("gateway1", 1)
    deployments = cluster.watches["deployments"]
    rt = kubeapi.store.registry.by_kind("apps/v1", "Deployment")

    def scale_server_side(replicas):  # written while the simulator cannot see the server
        kubeapi.store.update_scale(rt, NS, "gateway1", {"spec": {"replicas": replicas}})

    # connections cut: the watches resume from their resourceVersion
    assert kubeapi.drop_watches() >= 5
    scale(apps, 2)
    cluster.wait_pods("gateway1", 2)

    # a change while the server is down, then a restart: resumed, not relisted
    relists = deployments.relists
    kubeapi.stop()
    scale_server_side(3)
    kubeapi.start()
    cluster.wait_pods("gateway1", 3)
    cluster.wait(lambda: kubeapi.open_watches() == 5, what="all five watches open again")
    assert deployments.relists == relists and deployments.reconnects > 0

    # a change, then the history is compacted: 410 Gone, relist
    kubeapi.stop()
    scale_server_side(1)
    kubeapi.compact()
    kubeapi.start()
    cluster.wait_pods("gateway1", 1)
    cluster.wait(lambda: kubeapi.open_watches() == 5, what="all five watches open again")
    assert deployments.relists == relists + 1

    # a graceful end of the stream (server-side timeout) is followed by a new watch
    kubeapi.drop_watches(graceful=True)
    scale(apps, 2)
    cluster.wait_pods("gateway1", 2)


def test_pods_are_gateway_instances_for_vegd(cluster, apps, kubeapi):
    # the seed's gateway1 (its pods are skipped: the simulator makes them)
    cluster.apply_yaml(SEED / "gateway1.yaml")
    core = client.CoreV1Api(kubeapi.api_client())
    assert core.list_namespaced_pod(NS).items == []
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    pods = cluster.wait_pods("gateway1", 2)
    assert all(parse_pod(p).phase == "Running" for p in pods)

    custom = client.CustomObjectsApi(kubeapi.api_client())

    def items(api_version, kind, listing):
        return [{**o, "apiVersion": api_version, "kind": kind} for o in listing["items"]]
    objects = [
        *items("kubeovn.io/v1", "VpcEgressGateway", custom.list_cluster_custom_object(
            "kubeovn.io", "v1", "vpc-egress-gateways")),
        *items("kubeovn.io/v1", "Subnet", custom.list_cluster_custom_object(
            "kubeovn.io", "v1", "subnets")),
        *items("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition",
               custom.list_cluster_custom_object("k8s.cni.cncf.io", "v1",
                                                 "network-attachment-definitions")),
        *items("v1", "Pod", json.loads(core.list_pod_for_all_namespaces(
            _preload_content=False).data)),
        *items("v1", "Node", json.loads(core.list_node(_preload_content=False).data)),
    ]
    snap = snapshot_from_objects(objects)
    [gw] = snap.gateways
    result = workload(resolve_gateway(gw, snap), snap)
    assert result.problems == ()
    assert sorted(i.pod for i in result.instances) == sorted(
        f"{NS}/{p['metadata']['name']}" for p in pods)
    assert len({i.node for i in result.instances}) == 2
    for inst in result.instances:
        [ext] = inst.external
        assert ext in ipaddress.ip_network("172.17.0.0/16")


def test_readiness_failure_and_kill(cluster, apps):
    cluster.pods_ready = False
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    pods = cluster.wait_pods("gateway1", 2)
    assert not any(parse_pod(p).ready for p in pods)
    held = pods[0]["metadata"]["name"]
    cluster.set_ready(NS, held, True)
    assert parse_pod(cluster.wait(lambda: [p for p in cluster.pods("gateway1")
                                           if parse_pod(p).ready], what="one ready")[0]).name \
        == held
    cluster.pods_ready = True
    cluster.wait(lambda: all(parse_pod(p).ready for p in cluster.pods("gateway1")),
                 what="all ready")
    cluster.set_ready(NS, held, False)  # a per-pod hold outlives the global switch
    cluster.wait(lambda: not parse_pod(next(p for p in cluster.pods("gateway1")
                                            if p["metadata"]["name"] == held)).ready,
                 what="held pod not ready")

    cluster.fail_pod(NS, held)
    pods = cluster.wait_pods("gateway1", 2)  # a replacement for the failed pod
    assert held not in {p["metadata"]["name"] for p in pods}
    assert cluster.get_pod(NS, held)["status"]["phase"] == "Failed"


def test_a_pod_relabelled_out_of_the_selector_is_released_and_replaced(cluster, apps):
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    before = cluster.wait_pods("gateway1", 2)
    stray = before[0]["metadata"]["name"]
    cluster.label_pod(NS, stray, {GATEWAY_LABEL: None})
    cluster.wait(lambda: stray not in {p["metadata"]["name"] for p in cluster.pods("gateway1")},
                 what="the pod released")
    assert len(cluster.wait_pods("gateway1", 2)) == 2
    released = cluster.get_pod(NS, stray)
    assert not released["metadata"].get("ownerReferences")
    assert released["status"]["phase"] == "Running"


def test_pods_can_be_held_pending_with_their_addresses(cluster, apps):
    cluster.pods_running = False
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=1))
    pod = cluster.wait(lambda: next((p for p in cluster.pods("gateway1") if NETWORK_STATUS in
                                     p["metadata"].get("annotations", {})), None),
                       what="the pod addressed")
    cluster.wait_idle()
    assert cluster.get_pod(NS, pod["metadata"]["name"])["status"]["phase"] == "Pending"
    cluster.pods_running = True
    [running] = cluster.wait_pods("gateway1", 1)
    assert running["metadata"]["name"] == pod["metadata"]["name"]


def test_deleting_the_deployment_removes_its_pods(cluster, apps):
    apps.create_namespaced_deployment(NS, gateway_deployment(replicas=2))
    cluster.wait_pods("gateway1", 2)
    apps.delete_namespaced_deployment("gateway1", NS)
    core = client.CoreV1Api(apps.api_client)
    cluster.wait(lambda: not core.list_namespaced_pod(NS).items, what="pods gone")


def test_workload_pod_helpers(cluster):
    cluster.add_namespace("team-a", {"team": "a"})
    pod = cluster.add_pod("web", namespace="team-a", ip="10.16.0.50", labels={"app": "web"})
    parsed = parse_pod(pod)
    assert (parsed.phase, parsed.ready, parsed.logical_switch) == ("Running", True, "ovn-default")
    assert [str(i) for i in parsed.ips] == ["10.16.0.50"] and parsed.node_name
    with pytest.raises(NoAddress):
        cluster.add_pod("clash", ip="10.16.0.50")
    auto = parse_pod(cluster.add_pod("auto", namespace="team-a", node="kube-ovn-worker"))
    assert [str(i) for i in auto.ips] == ["10.16.0.2"] and auto.node_name == "kube-ovn-worker"

    relabelled = parse_pod(cluster.label_pod("team-a", "web", {"app": None, "tier": "db"}))
    assert relabelled.label_map == {"tier": "db"}
    ns = cluster.label_namespace("team-a", {"team": "b"})
    assert ns["metadata"]["labels"]["team"] == "b"


def test_close_joins_every_thread(kubeapi):
    sim = FakeCluster(kubeapi).start()
    assert all(t.is_alive() for t in sim.threads())
    sim.close()
    assert not any(t.is_alive() for t in sim.threads())


# ---------------------------------------------------------------- the pure rules, directly

def test_template_hash_and_rolling_limits():
    h = template_hash({"metadata": {"labels": {"a": "b"}}})
    assert re.fullmatch(r"[4-9bcdf]{6,10}", h) and h == template_hash({"metadata": {
        "labels": {"a": "b"}}})
    assert h != template_hash({"metadata": {"labels": {"a": "c"}}})
    assert rolling_limits({"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 0, "maxUnavailable": 1}}, 3) == (0, 1)
    assert rolling_limits({"type": "RollingUpdate"}, 3) == (1, 0)  # 25%: surge up, down down
    assert rolling_limits({"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": 0, "maxUnavailable": "25%"}}, 3) == (0, 1)  # never both zero
    assert rolling_limits({"type": "RollingUpdate", "rollingUpdate": {
        "maxSurge": "50%", "maxUnavailable": "50%"}}, 3) == (2, 1)
    assert rolling_limits({"type": "Recreate"}, 3) == (0, 3)


def test_ipam_excludes_gateways_and_pools():
    subnet = {"metadata": {"name": "s"}, "spec": {
        "cidrBlock": "10.9.0.0/29,fd00:9::/125", "excludeIps": ["10.9.0.2..10.9.0.3"]}}
    holder = {"metadata": {"annotations": {"ovn.kubernetes.io/ip_address": "10.9.0.4"}},
              "status": {"phase": "Running", "podIPs": [{"ip": "fd00:9::2"}]}}
    ipam = Ipam([subnet, {"metadata": {"name": "broken"}, "spec": {"cidrBlock": "nope"}}],
                [holder])
    assert set(ipam.subnets) == {"s"}
    s = ipam.subnets["s"]
    assert [str(i) for i in ipam.allocate(s, None)] == ["10.9.0.5", "fd00:9::3"]
    assert [str(i) for i in ipam.allocate(s, "10.9.0.4;10.9.0.6,fd00:9::6")] == \
        ["10.9.0.6", "fd00:9::6"]
    with pytest.raises(NoAddress, match=re.escape("no free address in 10.9.0.0/29")):
        ipam.allocate(s, None)  # .1 gateway, .2-.3 excluded, .4-.6 held, .7 broadcast
    with pytest.raises(NoAddress, match="IPPool"):
        ipam.allocate(s, "my-pool")


def test_network_attachment_forms_and_providers():
    def pod(networks):
        return {"metadata": {"namespace": "team", "annotations": {
            "k8s.v1.cni.cncf.io/networks": networks}}}
    assert attachments(pod("default/eth1, macvlan@ext")) == [
        ("default", "eth1", "net1"), ("team", "macvlan", "ext")]
    assert attachments(pod('[{"name": "eth1", "namespace": "default", "interface": "x1"}]')) \
        == [("default", "eth1", "x1")]
    with pytest.raises(NoAddress):
        attachments(pod("[not json"))
    nad = {"metadata": {"name": "eth1", "namespace": "default"}, "spec": {
        "config": '{"type": "macvlan", "ipam": {"type": "kube-ovn", "provider": "p.q"}}'}}
    assert nad_providers(nad) == ["p.q", "eth1.default", "eth1.default.ovn"]
