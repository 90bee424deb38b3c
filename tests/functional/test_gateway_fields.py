"""Kube-OVN's 2026 VpcEgressGateway fields through `vegd run`'s controller, the in-process API
server (the CRD from deploy/crds) and a real NB: resources, bandwidth, podAntiAffinity, named
IPPools and observability render into the workload; invalid combinations are refused by the CRD
or reported as Validated=False with nothing written to NB; IPPool changes re-evaluate."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from ovnstack import wait_for
from scenario import SEED, add_base_topology
from test_controller import GATEWAY1, Env
from vegd_harness import InProcessController

pytest_plugins = ["kubeapi.fixture", "kubelet"]

G, V = "kubeovn.io", "v1"


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


def create_pool(env: Env, name: str, subnet: str, ips: list[str]) -> None:
    env.custom.create_cluster_custom_object(G, V, "ippools", {
        "apiVersion": f"{G}/{V}", "kind": "IPPool", "metadata": {"name": name},
        "spec": {"subnet": subnet, "ips": ips}})


def patch_pool(env: Env, name: str, spec: dict) -> None:
    env.custom.patch_cluster_custom_object(G, V, "ippools", name, {"spec": spec})


def deployment(env: Env, name: str) -> dict:
    apps = client.AppsV1Api(env.kubeapi.api_client())
    return apps.api_client.sanitize_for_serialization(
        apps.read_namespaced_deployment(name, "default"))


def configmap(env: Env, name: str) -> dict | None:
    try:
        return env.core.read_namespaced_config_map(f"{name}-observability", "default").to_dict()
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def no_deployment(env: Env, name: str) -> bool:
    items = client.AppsV1Api(env.kubeapi.api_client()).list_namespaced_deployment("default").items
    return not [d for d in items if d.metadata.name == name]


FULL = {
    **GATEWAY1,
    "resources": {"requests": {"cpu": "100m", "memory": "80Mi"},
                  "limits": {"cpu": "1", "memory": "200Mi"}},
    "bandwidth": {"ingress": 100, "egress": "1Gi"},
    "podAntiAffinity": "Preferred",
    "internalIPPool": "gw-internal",
    "externalIPPool": "gw-external",
    "observability": {"conntrack": {"metrics": {"enabled": True},
                                    "log": {"enabled": True, "events": ["end"],
                                            "rateLimit": {"recordsPerSecond": 50}}}},
}


def test_new_fields_render_into_the_workload_and_observability_reloads_in_place(env):
    create_pool(env, "gw-internal", "ovn-default", ["10.16.200.1..10.16.200.3"])
    create_pool(env, "gw-external", "macvlan1", ["172.17.200.0/30"])
    env.create_gateway("full", FULL)
    pods = env.cluster.wait_pods("full", 2, timeout=15)
    dep = deployment(env, "full")
    template = dep["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    # Kube-OVN's CNI annotations: its ingress is what the gateway sends out (VEG egress)
    assert annotations["ovn.kubernetes.io/ingress_rate"] == "1074"  # 1Gi bit/s, rounded up
    assert annotations["ovn.kubernetes.io/egress_rate"] == "100"
    assert annotations["ovn.kubernetes.io/ip_pool"] == "gw-internal"
    assert annotations["eth1.default.kubernetes.io/ip_pool"] == "gw-external"
    anti = template["spec"]["affinity"]["podAntiAffinity"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in anti
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["weight"] == 100
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    (main,) = template["spec"]["containers"]
    assert main["resources"] == FULL["resources"]
    (setup,) = template["spec"]["initContainers"]
    assert setup["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}  # vegd's default
    env_vars = {e["name"]: e.get("value") for e in main["env"]}
    assert env_vars["VEGD_GATEWAY_BANDWIDTH_EGRESS"] == "1074"
    assert env_vars["VEGD_GATEWAY_BANDWIDTH_INGRESS"] == "100"
    # addresses came from the pools
    assert {p["status"]["podIP"] for p in pods} <= {"10.16.200.1", "10.16.200.2", "10.16.200.3"}
    wait_for(lambda: env.status("full").get("phase") == "Completed", 10, what="Completed")
    observed = env.condition("full", "ObservabilityConfigured")
    assert (observed["status"], observed["reason"]) == ("True", "ConfigMapUpToDate")
    assert "default/full-observability" in observed["message"]

    cm = configmap(env, "full")
    assert cm is not None
    assert cm["metadata"]["owner_references"][0]["kind"] == "VpcEgressGateway"
    config = json.loads(cm["data"]["config.json"])
    assert config["gateway"] == "full" and config["namespace"] == "default"
    log = config["observability"]["conntrack"]["log"]
    assert log["enabled"] is True and log["events"] == ["end"]
    assert log["rateLimit"] == {"recordsPerSecond": 50, "burst": 1000}

    # observability changes reach the ConfigMap, not the pod template: no pod is replaced
    spec_hash = dep["metadata"]["annotations"]["vegd/spec-hash"]
    names = sorted(p["metadata"]["name"] for p in pods)
    env.custom.patch_namespaced_custom_object(G, V, "default", "vpc-egress-gateways", "full", {
        "spec": {"observability": {"conntrack": {"log": {"rateLimit": {
            "recordsPerSecond": 7}}}}}})
    wait_for(lambda: json.loads(configmap(env, "full")["data"]["config.json"])["observability"][
        "conntrack"]["log"]["rateLimit"]["recordsPerSecond"] == 7, 10, what="ConfigMap update")
    assert deployment(env, "full")["metadata"]["annotations"]["vegd/spec-hash"] == spec_hash
    assert sorted(p["metadata"]["name"] for p in env.cluster.wait_pods("full", 2)) == names

    # switching anti-affinity is a template change (new pods follow the new rule)
    env.custom.patch_namespaced_custom_object(G, V, "default", "vpc-egress-gateways", "full", {
        "spec": {"podAntiAffinity": "Required"}})
    wait_for(lambda: "requiredDuringSchedulingIgnoredDuringExecution" in deployment(
        env, "full")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"], 10,
        what="required anti-affinity")


@pytest.mark.parametrize(("spec", "message"), [
    ({"internalIPs": ["10.16.0.101", "10.16.0.102"], "internalIPPool": "p"},
     "internalIPs and internalIPPool are mutually exclusive"),
    ({"externalIPs": ["172.17.0.101", "172.17.0.102"], "externalIPPool": "p"},
     "externalIPs and externalIPPool are mutually exclusive"),
    ({"bandwidth": {"egress": "10Kbps"}}, "bandwidth.egress"),
    ({"bandwidth": {"ingress": 9223372036855}},
     "bandwidth must be between 0 and 9223372036854 Mbps"),
    ({"podAntiAffinity": "Sometimes"}, "podAntiAffinity"),
    ({"observability": {"conntrack": {"log": {"rateLimit": {"recordsPerSecond": 0}}}}},
     "recordsPerSecond"),
    ({"observability": {"conntrack": {"log": {"filters": {"include": [{"original": {
        "sourcePorts": [{"start": 9, "end": 1}]}}]}}}}},
     "start must be less than or equal to end"),
])
def test_the_crd_refuses_invalid_combinations(env, spec, message):
    with pytest.raises(client.ApiException) as err:
        env.create_gateway("refused", {**GATEWAY1, **spec})
    assert err.value.status == 422
    assert message in err.value.body
    assert env.gateway("refused") is None
    assert env.owned_rows() == 0


def test_pool_on_the_wrong_subnet_is_invalid_until_the_pool_changes(env):
    create_pool(env, "elsewhere", "macvlan1", ["172.17.201.0/30"])
    env.create_gateway("mismatch", {**GATEWAY1, "internalIPPool": "elsewhere"})
    wait_for(lambda: env.condition("mismatch", "Validated").get("status") == "False", 10,
             what="Validated=False")
    cond = env.condition("mismatch", "Validated")
    assert cond["reason"] == "IPPoolSubnetMismatch"
    assert cond["message"] == ('spec.internalIPPool: subnet "macvlan1" of internal IPPool '
                               '"elsewhere" does not match internal subnet "ovn-default"')
    ready = env.condition("mismatch", "Ready")
    assert ready["status"] == "False" and ready["reason"] == "IPPoolSubnetMismatch"
    assert env.status("mismatch")["phase"] == "Pending"
    assert env.owned_rows() == 0 and no_deployment(env, "mismatch")

    # an IPPool change re-evaluates the gateway (Kube-OVN waits for the next gateway event)
    patch_pool(env, "elsewhere", {"subnet": "ovn-default", "ips": ["10.16.201.1..10.16.201.4"]})
    wait_for(lambda: env.condition("mismatch", "Validated").get("status") == "True", 10,
             what="Validated=True after the pool moved")
    env.cluster.wait_pods("mismatch", 2, timeout=15)
    wait_for(lambda: env.status("mismatch").get("phase") == "Completed", 10, what="Completed")


def test_missing_pool_then_a_pool_too_small_for_the_replicas(env):
    env.create_gateway("short", {**GATEWAY1, "externalIPPool": "later"})
    wait_for(lambda: env.condition("short", "Validated").get("reason") == "IPPoolNotFound", 10,
             what="IPPoolNotFound")
    assert env.owned_rows() == 0 and no_deployment(env, "short")

    create_pool(env, "later", "macvlan1", ["172.17.202.1"])  # one address, two replicas
    wait_for(lambda: env.condition("short", "Ready").get("reason") == "IPPoolExhausted", 15,
             what="Ready=False IPPoolExhausted")
    message = env.condition("short", "Ready")["message"]
    assert "external IPPool later has 1 address(es) in subnet macvlan1, fewer than the 2 " \
        "replicas need" in message
    assert env.condition("short", "Validated")["status"] == "True"
    assert env.condition("short", "ObservabilityConfigured") == {}  # observability is off

    patch_pool(env, "later", {"ips": ["172.17.202.1..172.17.202.3"]})
    env.cluster.kick()
    env.cluster.wait_pods("short", 2, timeout=15)
    wait_for(lambda: env.status("short").get("phase") == "Completed", 15, what="Completed")


def _strip_rules(node):
    if isinstance(node, dict):
        node.pop("x-kubernetes-validations", None)
        for value in node.values():
            _strip_rules(value)
    elif isinstance(node, list):
        for value in node:
            _strip_rules(value)


def test_an_invalid_spec_the_crd_let_through_is_reported_by_vegd(env):
    """A CRD without the CEL rules (Kube-OVN v1.16.0-v1.16.2 shipped none) still gets a clear
    Validated=False from vegd itself, with Kube-OVN's message."""
    ext = client.ApiextensionsV1Api(env.kubeapi.api_client())
    name = "vpc-egress-gateways.kubeovn.io"
    crd = ext.api_client.sanitize_for_serialization(ext.read_custom_resource_definition(name))
    _strip_rules(crd)
    ext.replace_custom_resource_definition(name, crd)
    env.create_gateway("both", {**GATEWAY1, "internalIPs": ["10.16.0.101", "10.16.0.102"],
                                "internalIPPool": "p"})
    wait_for(lambda: env.condition("both", "Validated").get("status") == "False", 10,
             what="Validated=False")
    assert env.condition("both", "Validated")["message"] == \
        "spec.internalIPPool: internalIPs and internalIPPool are mutually exclusive"
    assert env.owned_rows() == 0 and no_deployment(env, "both")
