"""`vegd run`'s controller end to end against the in-process API server, a stand-in kubelet/CNI
(FakeCluster) and a real NB/SB/northd: workload, NB rows, status, scale, selectors, deletion,
watch trouble, invalid specs."""

from __future__ import annotations

import json
import re
import time

import pytest
from kubernetes import client
from ovnstack import wait_for
from scenario import SEED, add_base_topology
from vegd_harness import GATEWAY_IMAGE, InProcessController

from vegd.controller.reconciler import FINALIZER
from vegd.plan.names import selector_set

pytest_plugins = ["kubeapi.fixture", "kubelet"]

G, V, PLURAL = "kubeovn.io", "v1", "vpc-egress-gateways"
LABEL = "ovn.kubernetes.io/vpc-egress-gateway"


@pytest.fixture
def env(fresh_ovn, kubeapi, fake_cluster):
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    vegd = InProcessController(kubeapi, fresh_ovn).start()
    try:
        wait_for(lambda: vegd.stats.active, 10, what="vegd active")
        yield Env(fresh_ovn, kubeapi, fake_cluster, vegd)
    finally:
        vegd.stop()


class Env:
    def __init__(self, ovn, kubeapi, cluster, vegd):
        self.ovn, self.kubeapi, self.cluster, self.vegd = ovn, kubeapi, cluster, vegd
        self.custom = client.CustomObjectsApi(kubeapi.api_client())
        self.core = client.CoreV1Api(kubeapi.api_client())

    def create_gateway(self, name: str, spec: dict, namespace: str = "default") -> dict:
        return self.custom.create_namespaced_custom_object(G, V, namespace, PLURAL, {
            "apiVersion": f"{G}/{V}", "kind": "VpcEgressGateway",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec})

    def gateway(self, name: str, namespace: str = "default") -> dict | None:
        try:
            return self.custom.get_namespaced_custom_object(G, V, namespace, PLURAL, name)
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def status(self, name: str) -> dict:
        return (self.gateway(name) or {}).get("status") or {}

    def condition(self, name: str, ctype: str) -> dict:
        return next((c for c in self.status(name).get("conditions") or []
                     if c["type"] == ctype), {})

    def rows(self, table: str) -> list[dict]:
        doc = json.loads(self.ovn.nbctl("--format=json", "find", table))
        return [{h: _value(v) for h, v in zip(doc["headings"], row, strict=True)}
                for row in doc["data"]]

    def policies(self) -> dict[str, set[str]]:
        """match -> nexthops of vegd's 29100 policies."""
        return {r["match"]: set(_list(r["nexthops"])) for r in self.rows("Logical_Router_Policy")
                if r["priority"] == 29100 and r["external_ids"].get("vendor") == "vegd"}

    def address_set(self, name: str) -> set[str]:
        found = [r for r in self.rows("Address_Set") if r["name"] == name]
        return set(_list(found[0]["addresses"])) if found else set()

    def events(self, name: str) -> list[dict]:
        items = self.core.list_namespaced_event("default").items
        return [e for e in items if e.involved_object.name == name]

    def owned_rows(self) -> int:
        """Rows vegd holds for gateways (VPC-level rows excepted)."""
        total = 0
        for table in ("Logical_Router_Policy", "Logical_Router_Static_Route", "Address_Set", "BFD"):
            total += sum(1 for r in self.rows(table) if r["external_ids"].get("vendor") == "vegd"
                         and "vpc-egress-gateway" in r["external_ids"])
        return total


def _list(v) -> list:
    """A set column: ovsdb JSON gives a lone member as a bare value."""
    return v if isinstance(v, list) else [v]


def _value(v):
    """ovsdb JSON notation -> Python: sets to lists, maps to dicts."""
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return [_value(x) for x in v[1]]
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: _value(x) for k, x in v[1]}
    if isinstance(v, list) and len(v) == 2 and v[0] == "uuid":
        return v[1]
    return v


GATEWAY1 = {"vpc": "ovn-cluster", "replicas": 2, "externalSubnet": "macvlan1",
            "policies": [{"snat": True, "subnets": ["ovn-default"]}]}


def test_seed_gateway1_workload_rows_and_status(env):
    env.create_gateway("gateway1", GATEWAY1)
    pods = env.cluster.wait_pods("gateway1", 2, timeout=15)
    dep = client.AppsV1Api(env.kubeapi.api_client()).read_namespaced_deployment(
        "gateway1", "default")
    assert dep.metadata.labels[LABEL] == "gateway1"
    assert dep.metadata.owner_references[0].kind == "VpcEgressGateway"
    assert dep.spec.replicas == 2
    assert dep.spec.strategy.rolling_update.max_surge == 0
    assert dep.spec.strategy.rolling_update.max_unavailable == 1
    anti = dep.spec.template.spec.affinity.pod_anti_affinity
    assert anti.required_during_scheduling_ignored_during_execution[0].topology_key == \
        "kubernetes.io/hostname"
    annotations = dep.spec.template.metadata.annotations
    assert annotations["ovn.kubernetes.io/logical_switch"] == "ovn-default"
    assert annotations["k8s.v1.cni.cncf.io/networks"] == "default/eth1"
    assert dep.spec.template.spec.containers[0].image == GATEWAY_IMAGE

    ips = {p["status"]["podIP"] for p in pods}
    wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16") == ips, 10,
             what="29100 policy with both instances")
    wait_for(lambda: env.status("gateway1").get("phase") == "Completed", 10, what="Completed")
    status = env.status("gateway1")
    assert status["ready"] is True
    assert sorted(status["internalIPs"]) == sorted(ips)
    assert len(status["externalIPs"]) == 2
    assert status["workload"]["kind"] == "Deployment" and status["workload"]["name"] == "gateway1"
    assert sorted(status["workload"]["nodes"]) == sorted(p["spec"]["nodeName"] for p in pods)
    assert env.condition("gateway1", "Validated")["status"] == "True"
    assert env.condition("gateway1", "Ready")["status"] == "True"
    assert FINALIZER in env.gateway("gateway1")["metadata"]["finalizers"]
    assert any(e.type == "Normal" for e in env.events("gateway1"))


def test_scale_subresource_changes_the_nexthops(env):
    toleration = {"key": "egress", "operator": "Exists", "effect": "NoSchedule"}
    env.create_gateway("gateway1", {**GATEWAY1, "replicas": 1, "tolerations": [toleration]})
    env.cluster.wait_pods("gateway1", 1, timeout=15)
    dep = client.AppsV1Api(env.kubeapi.api_client()).read_namespaced_deployment(
        "gateway1", "default", _preload_content=False)
    assert toleration in json.loads(dep.data)["spec"]["template"]["spec"]["tolerations"]
    wait_for(lambda: len(env.policies().get("ip4.src == 10.16.0.0/16", ())) == 1, 10,
             what="one nexthop")
    env.custom.patch_namespaced_custom_object_scale(G, V, "default", PLURAL, "gateway1",
                                                    {"spec": {"replicas": 2}})
    pods = env.cluster.wait_pods("gateway1", 2, timeout=15)
    ips = {p["status"]["podIP"] for p in pods}
    wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16") == ips, 10,
             what="two nexthops after scaling")
    scale = env.custom.get_namespaced_custom_object_scale(G, V, "default", PLURAL, "gateway1")
    wait_for(lambda: env.custom.get_namespaced_custom_object_scale(
        G, V, "default", PLURAL, "gateway1")["status"]["replicas"] == 2, 10,
        what="scale status")
    assert scale["spec"]["replicas"] == 2


SELECTING = {"vpc": "ovn-cluster", "replicas": 1, "externalSubnet": "macvlan1",
             "selectors": [{"namespaceSelector": {"matchLabels": {"egress": "on"}},
                            "podSelector": {"matchLabels": {"app": "web"}}}]}


def test_selector_follows_pod_and_namespace_labels(env):
    env.cluster.add_namespace("shop", {"egress": "on"})
    env.cluster.add_namespace("blog", {})
    env.create_gateway("picky", SELECTING)
    env.cluster.wait_pods("picky", 1, timeout=15)
    set4 = selector_set("default/picky", 4)
    wait_for(lambda: env.status("picky").get("phase") == "Completed", 10, what="Completed")
    env.cluster.add_pod("web1", namespace="shop", ip="10.16.0.101")
    env.cluster.add_pod("web2", namespace="blog", ip="10.16.0.102", labels={"app": "web"})
    assert "10.16.0.101" not in env.address_set(set4)

    start = time.monotonic()
    env.cluster.label_pod("shop", "web1", {"app": "web"})
    wait_for(lambda: "10.16.0.101" in env.address_set(set4), 1.0,
             what="labelled pod in the address set within 1 s")
    pod_latency = time.monotonic() - start
    assert "10.16.0.102" not in env.address_set(set4)  # its namespace is not selected

    start = time.monotonic()
    env.cluster.label_namespace("blog", {"egress": "on"})
    wait_for(lambda: "10.16.0.102" in env.address_set(set4), 1.0,
             what="relabelled namespace's pod in the address set within 1 s")
    ns_latency = time.monotonic() - start
    env.cluster.label_namespace("shop", {"egress": None})
    wait_for(lambda: "10.16.0.101" not in env.address_set(set4), 1.0,
             what="pod leaves with its namespace's label")
    print(f"\nselector latency: pod label {pod_latency * 1000:.0f} ms, "
          f"namespace label {ns_latency * 1000:.0f} ms")


def test_deleting_the_gateway_removes_its_rows_then_the_finalizer(env):
    before = env.ovn.nbctl("lr-policy-list", "ovn-cluster")
    env.create_gateway("gateway1", GATEWAY1)
    env.cluster.wait_pods("gateway1", 2, timeout=15)
    wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16"), 10, what="rows")
    assert env.owned_rows() > 0
    env.custom.delete_namespaced_custom_object(G, V, "default", PLURAL, "gateway1")
    wait_for(lambda: env.gateway("gateway1") is None, 10, what="finalizer removed, object gone")
    assert env.owned_rows() == 0
    # Kube-OVN's own policies and routes are untouched
    assert env.ovn.nbctl("lr-policy-list", "ovn-cluster") == before
    assert env.vegd.nb.has_lock


def test_invalid_spec_is_reported_without_writing_and_clears_when_fixed(env):
    bad = {**GATEWAY1, "policies": [{"snat": True, "subnets": ["no-such-subnet"]}]}
    env.create_gateway("broken", bad)
    wait_for(lambda: env.condition("broken", "Validated").get("status") == "False", 10,
             what="Validated=False")
    cond = env.condition("broken", "Validated")
    assert "no-such-subnet" in cond["message"]
    assert env.status("broken")["ready"] is False
    wait_for(lambda: any(e.type == "Warning" for e in env.events("broken")), 5,
             what="a Warning event")
    assert env.owned_rows() == 0
    deployments = client.AppsV1Api(env.kubeapi.api_client()).list_namespaced_deployment(
        "default").items
    assert not [d for d in deployments if d.metadata.name == "broken"]

    env.custom.patch_namespaced_custom_object(G, V, "default", PLURAL, "broken", {
        "spec": {"policies": [{"snat": True, "subnets": ["ovn-default"]}]}})
    wait_for(lambda: env.condition("broken", "Validated").get("status") == "True", 10,
             what="Validated=True after the fix")
    env.cluster.wait_pods("broken", 2, timeout=15)
    wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16"), 10, what="rows after fix")


def test_no_event_lost_across_dropped_watches_410_and_restart(env):
    env.create_gateway("picky", SELECTING)
    env.cluster.add_namespace("shop", {"egress": "on"})
    env.cluster.wait_pods("picky", 1, timeout=15)
    set4 = selector_set("default/picky", 4)
    wait_for(lambda: env.status("picky").get("phase") == "Completed", 10, what="Completed")

    env.kubeapi.drop_watches()
    env.cluster.add_pod("a", namespace="shop", ip="10.16.0.111", labels={"app": "web"})
    wait_for(lambda: "10.16.0.111" in env.address_set(set4), 10, what="after dropped watches")

    env.kubeapi.stop()
    env.kubeapi.start()
    env.cluster.add_pod("b", namespace="shop", ip="10.16.0.112", labels={"app": "web"})
    env.kubeapi.compact()  # vegd's resourceVersion is now too old: 410 and a relist
    env.kubeapi.drop_watches()
    env.core.delete_namespaced_pod("a", "shop")
    wait_for(lambda: env.address_set(set4) == {"10.16.0.112"}, 15,
             what="after 410 Gone: added and deleted pods both seen")

    env.kubeapi.restart()
    env.cluster.label_pod("shop", "b", {"app": None})
    wait_for(lambda: env.address_set(set4) == set(), 15, what="after an API server restart")


GATEWAY2 = {"vpc": "vpc1", "replicas": 2, "internalSubnet": "subnet1",
            "externalSubnet": "macvlan1", "bfd": {"enabled": True, "minRX": 300, "minTX": 300,
                                                  "multiplier": 3},
            "policies": [{"snat": True, "ipBlocks": ["192.168.0.0/24"]}]}


def test_vpc_bfd_port_follows_node_labels_and_bfd_state_reaches_the_status(env):
    vpc_api = ("kubeovn.io", "v1", "vpcs", "vpc1")
    env.custom.patch_cluster_custom_object(*vpc_api, {"spec": {"bfdPort": {
        "nodeSelector": {"matchLabels": {"bfd": "yes"}}}}})
    env.cluster.label_node("kube-ovn-worker", {"bfd": "yes"})

    def chassis() -> set[str]:
        return {r["chassis_name"] for r in env.rows("HA_Chassis")}

    def status_nodes() -> list[str]:
        vpc = env.custom.get_cluster_custom_object(*vpc_api)
        return ((vpc.get("status") or {}).get("bfdPort") or {}).get("nodes") or []

    wait_for(lambda: chassis() == {"3c8e1b4e-0c0f-4d2a-9e1d-000000000002"}, 5,
             what="HA_Chassis of the labelled node")
    wait_for(lambda: status_nodes() == ["kube-ovn-worker"], 5, what="status.bfdPort.nodes")
    vpc = env.custom.get_cluster_custom_object(*vpc_api)
    assert vpc["status"]["bfdPort"]["name"] == "bfd@vpc1"
    assert vpc["status"]["bfdPort"]["ip"] == "10.255.255.255"

    env.cluster.label_node("kube-ovn-worker2", {"bfd": "yes"})
    wait_for(lambda: len(chassis()) == 2, 5, what="a second node labelled")
    wait_for(lambda: status_nodes() == ["kube-ovn-worker", "kube-ovn-worker2"], 5,
             what="status follows")

    env.create_gateway("gateway2", GATEWAY2)
    pods = env.cluster.wait_pods("gateway2", 2, timeout=15)
    ips = sorted(p["status"]["podIP"] for p in pods)
    wait_for(lambda: sorted(r["dst_ip"] for r in env.rows("BFD")
                            if r["logical_port"] == "bfd@vpc1") == ips, 10,
             what="one BFD row per instance")

    def sessions() -> dict[str, str]:
        return {s["ip"]: s["status"] for s in env.status("gateway2").get("bfdSessions") or []}

    wait_for(lambda: set(sessions()) == set(ips), 10, what="bfdSessions in the status")
    assert "up" not in sessions().values()
    # ovn-controller reports session state in SB; northd copies it to NB BFD.status
    sb_uuid = wait_for(lambda: env.ovn.sbctl("--bare", "--columns=_uuid", "find", "BFD",
                                             f"dst_ip={ips[0]}").split(), 10,
                       what="ovn-northd's SB BFD row")[0]
    env.ovn.sbctl("set", "BFD", sb_uuid, "status=up")
    wait_for(lambda: sessions().get(ips[0]) == "up", 5, what="BFD up reported per instance")
    assert sessions()[ips[1]] != "up"


def test_subnet_cidr_change_reaches_the_policies(env):
    env.create_gateway("inner", {"vpc": "vpc1", "replicas": 1, "internalSubnet": "subnet1",
                                 "externalSubnet": "macvlan1",
                                 "policies": [{"snat": True, "subnets": ["subnet1"]}]})
    env.cluster.wait_pods("inner", 1, timeout=15)
    wait_for(lambda: "ip4.src == 192.168.0.0/24" in env.policies(), 10, what="/24 policy")
    env.custom.patch_cluster_custom_object("kubeovn.io", "v1", "subnets", "subnet1",
                                           {"spec": {"cidrBlock": "192.168.0.0/23"}})
    wait_for(lambda: "ip4.src == 192.168.0.0/23" in env.policies()
             and "ip4.src == 192.168.0.0/24" not in env.policies(), 5,
             what="the policy follows the subnet's CIDR")


def test_orphans_are_collected_at_start_and_live_rows_kept(fresh_ovn, kubeapi, fake_cluster,
                                                             tmp_path):
    from scenario import Scenario

    add_base_topology(fresh_ovn)
    scenario = Scenario(fresh_ovn, tmp_path)
    code, _ = scenario.apply()
    assert code == 0
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    env = Env(fresh_ovn, kubeapi, fake_cluster, None)
    assert env.owned_rows() > 0  # gateway1 and gateway2 rows from `vegd apply`
    vegd = env.vegd = InProcessController(kubeapi, fresh_ovn).start()
    try:
        wait_for(lambda: env.owned_rows() == 0, 10, what="orphans of deleted gateways collected")
        # the VPC's own rows (bfd@vpc1) belong to a VPC that exists: kept
        assert any(r["name"] == "bfd@vpc1" for r in env.rows("Logical_Router_Port"))
    finally:
        vegd.stop()


def test_api_errors_are_retried_and_invalid_specs_are_not(env):
    env.kubeapi.fail_next_write()  # the next write through HTTP (vegd's finalizer) gets a 500
    env.kubeapi.create({"apiVersion": f"{G}/{V}", "kind": "VpcEgressGateway",
                        "metadata": {"name": "gateway1", "namespace": "default"},
                        "spec": {**GATEWAY1, "replicas": 1}})  # server-side, not over HTTP
    env.cluster.wait_pods("gateway1", 1, timeout=15)
    wait_for(lambda: env.status("gateway1").get("phase") == "Completed", 10,
             what="converged after a 500")
    assert env.vegd.stats.failures >= 1

    env.create_gateway("broken", {**GATEWAY1, "vpc": "no-such-vpc"})
    wait_for(lambda: env.condition("broken", "Validated").get("status") == "False", 10,
             what="Validated=False")
    assert env.vegd.controller.queue.failures("veg:default/broken") == 0  # not requeued


def _uuid(env, table: str, **match) -> str:
    return _row(env, table, **match)["_uuid"]


def _row(env, table: str, **match) -> dict:
    return next(r for r in env.rows(table) if all(r.get(k) == v for k, v in match.items()))


def _drop_symmetric_reply(env) -> None:
    route = _row(env, "Logical_Router_Static_Route", policy="src-ip")  # gateway2's only rows
    assert route["external_ids"]["vendor"] == "vegd" and "ecmp_symmetric_reply" in \
        route["options"]
    env.ovn.nbctl("remove", "Logical_Router_Static_Route", route["_uuid"], "options",
                  "ecmp_symmetric_reply")


def _change_selected_addresses(env) -> None:
    name = selector_set("default/picky", 4)
    assert env.address_set(name) == {"10.16.0.101"}
    env.ovn.nbctl("set", "Address_Set", name, 'addresses="10.16.0.250"')


def _setup_gateway1(env) -> None:
    env.create_gateway("gateway1", {**GATEWAY1, "replicas": 1})
    env.cluster.wait_pods("gateway1", 1, timeout=15)
    wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16"), 10, what="rows")


def _setup_gateway2(env) -> None:
    env.create_gateway("gateway2", {**GATEWAY2, "replicas": 1})  # BFD route mode, bfd@vpc1
    ip = env.cluster.wait_pods("gateway2", 1, timeout=15)[0]["status"]["podIP"]
    wait_for(lambda: any(r["logical_port"] == "bfd@vpc1" and r["dst_ip"] == ip
                         for r in env.rows("BFD")), 10, what="the instance's BFD row")


def _setup_selecting(env) -> None:
    env.cluster.add_namespace("shop", {"egress": "on"})
    env.create_gateway("picky", SELECTING)
    env.cluster.wait_pods("picky", 1, timeout=15)
    env.cluster.add_pod("web1", namespace="shop", ip="10.16.0.101", labels={"app": "web"})
    wait_for(lambda: env.address_set(selector_set("default/picky", 4)) == {"10.16.0.101"}, 10,
             what="the selected pod in the address set")


GATEWAY1_POLICY = "ip4.src == 10.16.0.0/16"
DRIFTS = {
    # what someone does to a row of ours: the gateway set up first, the table of that row
    # (None: a row added)
    "deleted policy": (_setup_gateway1, "Logical_Router_Policy", lambda env: env.ovn.nbctl(
        "lr-policy-del", "ovn-cluster", _uuid(env, "Logical_Router_Policy",
                                              match=GATEWAY1_POLICY))),
    "changed nexthops": (_setup_gateway1, "Logical_Router_Policy", lambda env: env.ovn.nbctl(
        "set", "Logical_Router_Policy", _uuid(env, "Logical_Router_Policy",
                                              match=GATEWAY1_POLICY), 'nexthops="10.16.0.99"')),
    "orphan of ours": (_setup_gateway1, None, lambda env: env.ovn.nbctl(
        "create", "Address_Set", "name=VEG.orphan_ip4",
        "external_ids:vendor=vegd", 'external_ids:vpc-egress-gateway="gone/gw"')),
    "BFD min_rx": (_setup_gateway2, "BFD", lambda env: env.ovn.nbctl(
        "set", "BFD", _uuid(env, "BFD", logical_port="bfd@vpc1"), "min_rx=1234")),
    "address-set members": (_setup_selecting, "Address_Set", _change_selected_addresses),
    "route options": (_setup_gateway2, "Logical_Router_Static_Route", _drop_symmetric_reply),
    "bfd@<vpc> networks": (_setup_gateway2, "Logical_Router_Port", lambda env: env.ovn.nbctl(
        "set", "Logical_Router_Port", "bfd@vpc1", 'networks="10.255.255.1/32"')),
    # stock bfd-port mode: the row that keeps TTL 255 towards subnet1 (docs/nb-contract.md)
    "deleted helper BFD row": (_setup_gateway2, "BFD", lambda env: env.ovn.nbctl(
        "destroy", "BFD", _uuid(env, "BFD", logical_port="vpc1-subnet1", dst_ip="192.168.0.1"))),
    # rows of ours that hang off another row of ours (no owner index entry of their own)
    "HA_Chassis priority": (_setup_gateway2, "HA_Chassis", lambda env: env.ovn.nbctl(
        "set", "HA_Chassis", _uuid(env, "HA_Chassis", priority=100), "priority=7")),
    "HA_Chassis external_ids": (_setup_gateway2, "HA_Chassis", lambda env: env.ovn.nbctl(
        "remove", "HA_Chassis", _uuid(env, "HA_Chassis", priority=100), "external_ids",
        "vendor")),
    "bfd-peer port external_ids": (_setup_gateway2, "Logical_Switch_Port",
                                   lambda env: env.ovn.nbctl(
        "remove", "Logical_Switch_Port", "bfd-peer@vpc1", "external_ids", "vendor")),
    "bfd-peer port options": (_setup_gateway2, "Logical_Switch_Port", lambda env: env.ovn.nbctl(
        "set", "Logical_Switch_Port", "bfd-peer@vpc1", "options:router-port=elsewhere")),
}
# The rows vegd writes (docs/nb-contract.md), compared column by column.
VEGD_TABLES = ("Logical_Router_Policy", "Logical_Router_Static_Route", "Address_Set", "BFD",
               "Logical_Router_Port", "Logical_Switch", "Logical_Switch_Port",
               "HA_Chassis_Group", "HA_Chassis")


def vegd_rows(env) -> list[tuple[str, str]]:
    """Every row of ours as text, row references and northd's `status` left out: a row made
    again equals the one it replaces. (One ovn-nbctl run: the repair is timed by this poll.)"""
    args: list[str] = ["--format=json"]
    for table in VEGD_TABLES:
        args += ["--", "find", table, "external_ids:vendor=vegd"]
    text, decoder, at, out = env.ovn.nbctl(*args), json.JSONDecoder(), 0, []
    for table in VEGD_TABLES:
        doc, at = decoder.raw_decode(text, at)
        at = len(text) - len(text[at:].lstrip())
        for row in doc["data"]:
            cols = {h: v for h, v in zip(doc["headings"], row, strict=True)
                    if h not in ("_uuid", "_version", "status")}
            out.append((table, re.sub(r'\["uuid", "[0-9a-f-]+"\]', "ref",
                                      json.dumps(cols, sort_keys=True))))
    return sorted(out)


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_nb_drift_is_repaired_at_once(fresh_ovn, kubeapi, fake_cluster, drift):
    """With the periodic resync an hour away, NB row events bring the rows back exactly."""
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    vegd = InProcessController(kubeapi, fresh_ovn, resync_period=3600).start()
    env = Env(fresh_ovn, kubeapi, fake_cluster, vegd)
    setup, table, make_drift = DRIFTS[drift]
    try:
        wait_for(lambda: vegd.stats.active, 10, what="vegd active")
        setup(env)
        wait_for(vegd.idle, 10, what="the controller to settle")
        before, written = vegd_rows(env), vegd.nb.transactions
        assert table in {t for t, _ in before} | {None}  # they include the drifted row
        make_drift(env)
        start = time.monotonic()
        # (the repair may beat any look at the drifted row: vegd's write shows it was needed)
        wait_for(lambda: vegd.nb.transactions > written and vegd_rows(env) == before, 1.0,
                 what=f"vegd to repair the {drift}")
        print(f"\n{drift}: repaired in {(time.monotonic() - start) * 1000:.0f} ms")
        assert vegd.stats.resyncs == 1  # the start-up pass only
    finally:
        vegd.stop()


def test_a_kind_not_served_deletes_nothing(fresh_ovn, tmp_path):
    """An API server that does not serve Vpcs (Kube-OVN's CRD missing, or not yet installed):
    an empty cache for that kind, not "every VPC was deleted": the VPC rows stay, and no
    garbage collection runs."""
    from kubeapi.fixture import KubeApi
    from kubeapi.resources import Registry, builtin_types
    from scenario import Scenario

    add_base_topology(fresh_ovn)
    assert Scenario(fresh_ovn, tmp_path).apply()[0] == 0
    registry = Registry([t for t in builtin_types() if t.plural != "vpcs"])
    api = KubeApi(registry)  # the VEG CRD installed, Kube-OVN's Vpc type not served
    vegd = InProcessController(api, fresh_ovn)
    env = Env(fresh_ovn, api, None, vegd)
    vegd.start()
    try:
        wait_for(vegd.idle, 10, what="the first resync done")
        assert not vegd.controller.cache.complete
        assert "bfd@vpc1" in [r["name"] for r in env.rows("Logical_Router_Port")]
        assert vegd.controller.stats.resyncs >= 1
    finally:
        vegd.stop()
        api.close()


def test_long_gateway_names_find_their_pods(env):
    name = "egress-" + "x" * 60  # 67 characters: the pod label is shortened
    env.create_gateway(name, {**GATEWAY1, "replicas": 1})
    pods = env.cluster.wait_pods(name, 1, timeout=15)
    assert pods[0]["metadata"]["labels"][LABEL] != name
    wait_for(lambda: env.status(name).get("internalIPs") == [pods[0]["status"]["podIP"]], 10,
             what="the instance found through the shortened label")
    assert env.policies()["ip4.src == 10.16.0.0/16"] == {pods[0]["status"]["podIP"]}


def test_deleting_the_older_of_two_overlapping_gateways_validates_the_newer(env):
    # creationTimestamp has whole seconds: on a tie the key decides, so name them in order
    env.create_gateway("a-older", {**GATEWAY1, "replicas": 1})
    wait_for(lambda: env.condition("a-older", "Validated").get("status") == "True", 10,
             what="older valid")
    env.create_gateway("b-newer", {**GATEWAY1, "replicas": 1})
    wait_for(lambda: env.condition("b-newer", "Validated").get("status") == "False", 10,
             what="newer overlaps")
    assert "overlaps" in env.condition("b-newer", "Validated")["message"]
    env.custom.delete_namespaced_custom_object(G, V, "default", PLURAL, "a-older")
    wait_for(lambda: env.condition("b-newer", "Validated").get("status") == "True", 10,
             what="newer re-checked when the older one went")


def test_bfd_timers_that_flap_on_stock_ovn_get_one_warning(env):
    vpc_api = ("kubeovn.io", "v1", "vpcs", "vpc1")
    env.custom.patch_cluster_custom_object(*vpc_api, {"spec": {"bfdPort": {
        "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": "kube-ovn-worker"}}}}})
    env.create_gateway("gateway2", {**GATEWAY2, "replicas": 1})  # 300/300 x 3
    env.cluster.wait_pods("gateway2", 1, timeout=15)
    wait_for(lambda: any(e.reason == "BfdTimersMayFlap" for e in env.events("gateway2")), 10,
             what="the advisory Event")
    env.custom.patch_namespaced_custom_object(G, V, "default", PLURAL, "gateway2", {
        "spec": {"bfd": {"minTX": 100}}})
    wait_for(lambda: env.rows("BFD") and all(
        r["min_rx"] == 100 for r in env.rows("BFD") if r["logical_port"] == "bfd@vpc1"), 10,
        what="the new timers in NB")
    assert sum(e.reason == "BfdTimersMayFlap" for e in env.events("gateway2")) == 1


def test_instance_addresses_swapped_while_vegd_was_down_converge_in_one_transaction(
        fresh_ovn, kubeapi, fake_cluster):
    """Two BFD gateways of vpc1; their pods swap addresses while no vegd runs; the next vegd's
    first pass moves both BFD rows and their routes in one NB transaction, with no refusal."""
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    vegd = InProcessController(kubeapi, fresh_ovn).start()
    env = Env(fresh_ovn, kubeapi, fake_cluster, vegd)
    spec3 = {**GATEWAY2, "replicas": 1, "policies": [{"snat": True,
                                                      "ipBlocks": ["192.168.0.128/26"]}]}
    try:
        env.create_gateway("gateway2", {**GATEWAY2, "replicas": 1, "policies": [
            {"snat": True, "ipBlocks": ["192.168.0.0/26"]}]})
        env.create_gateway("gateway3", spec3)
        pod2 = env.cluster.wait_pods("gateway2", 1, timeout=15)[0]
        pod3 = env.cluster.wait_pods("gateway3", 1, timeout=15)[0]
        ip2, ip3 = pod2["status"]["podIP"], pod3["status"]["podIP"]
        wait_for(lambda: len([r for r in env.rows("BFD") if r["dst_ip"] in (ip2, ip3)]) == 2,
                 10, what="both sessions")
    finally:
        vegd.stop()

    def owners() -> dict[str, str]:
        return {r["dst_ip"]: r["external_ids"].get("vpc-egress-gateway", "")
                for r in env.rows("BFD") if r["dst_ip"] in (ip2, ip3)}

    assert owners() == {ip2: "default/gateway2", ip3: "default/gateway3"}
    for pod, ip in ((pod2, ip3), (pod3, ip2)):  # the swap, as the IPAM could do it
        name = pod["metadata"]["name"]
        status = json.loads(pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
        status[0]["ips"] = [ip]
        env.core.patch_namespaced_pod(name, "default", {"metadata": {"annotations": {
            "k8s.v1.cni.cncf.io/network-status": json.dumps(status)}}})
        env.core.patch_namespaced_pod_status(name, "default", {"status": {
            "podIP": ip, "podIPs": [{"ip": ip}]}})
    vegd = InProcessController(kubeapi, fresh_ovn).start()
    try:
        wait_for(lambda: owners() == {ip3: "default/gateway2", ip2: "default/gateway3"}, 10,
                 what="the BFD rows moved with the addresses")
        wait_for(vegd.idle, 10, what="the controller to settle")
        assert vegd.nb.transactions == 1, vegd.nb.transactions
        assert vegd.stats.failures == 0, vegd.stats.last_error
        routes = env.ovn.nbctl("lr-route-list", "vpc1")
        assert re.search(rf"192\.168\.0\.0/26\s+{re.escape(ip3)} src-ip", routes), routes
        assert re.search(rf"192\.168\.0\.128/26\s+{re.escape(ip2)} src-ip", routes), routes
    finally:
        vegd.stop()


def test_pod_events_change_only_the_selector_set_members(env):
    """A selected pod's create, relabel and delete reach the address set by mutation of its
    members (the reconcile of selected pods only): the set and the policies keep their rows,
    and a gateway instance's event, a namespace relabel and NB drift still reconcile the
    gateway completely."""
    env.cluster.add_namespace("shop", {"egress": "on"})
    env.create_gateway("picky", SELECTING)
    env.cluster.wait_pods("picky", 1, timeout=15)
    set4 = selector_set("default/picky", 4)
    wait_for(lambda: env.status("picky").get("phase") == "Completed", 10, what="Completed")
    wait_for(env.vegd.idle, 10, what="vegd idle")
    reconciler = env.vegd.controller.reconciler
    before = {r["_uuid"] for t in ("Address_Set", "Logical_Router_Policy") for r in env.rows(t)
              if r["external_ids"].get("vpc-egress-gateway") == "default/picky"}
    fast = reconciler.members_reconciles

    env.cluster.add_pod("web1", namespace="shop", ip="10.16.0.101", labels={"app": "web"})
    env.cluster.add_pod("web2", namespace="shop", ip="10.16.0.102", labels={"app": "web"})
    wait_for(lambda: env.address_set(set4) >= {"10.16.0.101", "10.16.0.102"}, 5,
             what="created pods in the address set")
    env.cluster.label_pod("shop", "web1", {"app": "other"})
    wait_for(lambda: "10.16.0.101" not in env.address_set(set4), 5, what="relabelled pod out")
    env.core.delete_namespaced_pod("web2", "shop", grace_period_seconds=0)
    wait_for(lambda: "10.16.0.102" not in env.address_set(set4), 5, what="deleted pod out")
    assert reconciler.members_reconciles > fast
    after = {r["_uuid"] for t in ("Address_Set", "Logical_Router_Policy") for r in env.rows(t)
             if r["external_ids"].get("vpc-egress-gateway") == "default/picky"}
    assert after == before  # mutated in place, nothing rewritten

    # drift of the members: repaired (a complete reconcile) and the next pod event is exact
    env.ovn.nbctl("set", "Address_Set", set4, 'addresses="10.16.0.250"')
    wait_for(lambda: "10.16.0.250" not in env.address_set(set4), 5, what="drift repaired")
    env.cluster.add_pod("web3", namespace="shop", ip="10.16.0.103", labels={"app": "web"})
    wait_for(lambda: env.address_set(set4) == {"10.16.0.103"}, 5, what="exactly web3")

    # a namespace relabel is no pod event: the gateway is reconciled completely
    env.cluster.label_namespace("shop", {"egress": None})
    wait_for(lambda: env.address_set(set4) == set(), 5, what="namespace deselected")
