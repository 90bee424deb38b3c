"""deploy/rbac.yaml grants exactly what `vegd run` asks the API server for (issue 10).

`vegd run` runs as a process with its own bearer token against the test API server, through a
scenario that creates, updates, scales, observes, breaks and deletes a gateway (finalizer,
status, Events, the Deployment, its observability ConfigMap, the Vpc's status); every request
it makes is recorded and turned into RBAC terms (tests/kubeapi/rbac.py) and compared with the
ClusterRole. A verb the code starts using, or stops
using, fails this test until deploy/rbac.yaml says so."""

from __future__ import annotations

import json

import yaml
from kubeapi import rbac
from kubernetes import client
from ovnstack import wait_for
from scenario import ROOT, SEED, add_base_topology
from test_controller import GATEWAY1, Env
from vegd_harness import VegdProcess

pytest_plugins = ["kubeapi.fixture", "kubelet"]

G, V, PLURAL = "kubeovn.io", "v1", "vpc-egress-gateways"
TOKEN = "vegd-rbac-test"


def _cluster_role() -> dict:
    docs = yaml.safe_load_all((ROOT / "deploy" / "rbac.yaml").read_text())
    return next(d for d in docs if d and d["kind"] == "ClusterRole")


def _kubeconfig(path, server):
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "vegd",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "vegd", "user": {"token": TOKEN}}],
        "contexts": [{"name": "vegd", "context": {"cluster": "test", "user": "vegd"}}]}))
    return path


def test_the_cluster_role_is_exactly_what_vegd_run_uses(fresh_ovn, kubeapi, fake_cluster,
                                                        tmp_path):
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    env = Env(fresh_ovn, kubeapi, fake_cluster, None)
    vegd = VegdProcess(tmp_path, "vegd", _kubeconfig(tmp_path / "kubeconfig", kubeapi.url),
                       fresh_ovn).start()
    try:
        wait_for(lambda: "holding the NB lock: active" in vegd.log_text(), 20, what="active")
        # create: Deployment, finalizer, status, Events
        env.create_gateway("gateway1", GATEWAY1)
        env.cluster.wait_pods("gateway1", 2, timeout=15)
        wait_for(lambda: env.status("gateway1").get("phase") == "Completed", 15,
                 what="gateway1 Completed")
        # scale through the subresource, then a spec change: the Deployment is updated
        env.custom.patch_namespaced_custom_object_scale(G, V, "default", PLURAL, "gateway1",
                                                        {"spec": {"replicas": 1}})
        env.cluster.wait_pods("gateway1", 1, timeout=15)
        toleration = {"key": "egress", "operator": "Exists", "effect": "NoSchedule"}
        env.custom.patch_namespaced_custom_object(G, V, "default", PLURAL, "gateway1",
                                                  {"spec": {"tolerations": [toleration]}})
        apps = client.AppsV1Api(kubeapi.api_client())
        wait_for(lambda: toleration in json.loads(apps.read_namespaced_deployment(
            "gateway1", "default", _preload_content=False).data)["spec"]["template"]["spec"]
            .get("tolerations", []), 15, what="the Deployment updated")
        # observability switched on: the agents' ConfigMap is updated, not the Deployment
        env.custom.patch_namespaced_custom_object(G, V, "default", PLURAL, "gateway1", {
            "spec": {"observability": {"conntrack": {"log": {"enabled": True}}}}})
        wait_for(lambda: '"enabled": true' in (env.core.read_namespaced_config_map(
            "gateway1-observability", "default").data or {}).get("config.json", ""), 15,
            what="the observability ConfigMap updated")
        # an invalid gateway: Validated=False and a Warning Event
        env.create_gateway("broken", {**GATEWAY1, "vpc": "no-such-vpc"})
        wait_for(lambda: env.condition("broken", "Validated").get("status") == "False", 15,
                 what="Validated=False")
        # the Vpc's status.bfdPort
        wait_for(lambda: (env.custom.get_cluster_custom_object(G, V, "vpcs", "vpc1")
                          .get("status") or {}).get("bfdPort"), 15, what="Vpc status.bfdPort")
        # delete: rows, then the finalizer
        env.custom.delete_namespaced_custom_object(G, V, "default", PLURAL, "gateway1")
        wait_for(lambda: env.gateway("gateway1") is None, 15, what="gateway1 gone")
        assert env.events("broken")
    finally:
        vegd.stop()
    mine = [(m, p, q) for m, p, q, auth in kubeapi.requests() if auth == f"Bearer {TOKEN}"]
    assert mine, "no request carried vegd's token"
    used = rbac.used(mine)
    granted = rbac.granted(_cluster_role())
    assert used - granted == set(), "vegd asks for what deploy/rbac.yaml does not grant"
    # the one ClusterRole serves vegd in either API group it can be configured for
    # (api_group = kubeovn.io or vegd.io): the gateway grants stand for both
    used |= {("vegd.io", r, v) for g, r, v in used
             if g == "kubeovn.io" and r.startswith("vpc-egress-gateways")}
    assert granted - used == set(), "deploy/rbac.yaml grants what vegd never asks for"
    assert all(rbac.attributes(m, p, q) is not None for m, p, q in mine), \
        "non-resource requests need nonResourceURLs rules"
