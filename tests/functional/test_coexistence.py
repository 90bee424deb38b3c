"""vegd beside Kube-OVN's own VEG controller (docs/decisions.md, coexistence).

NB holds the rows Kube-OVN wrote for the seed's gateway1 and gateway2 (vendor kube-ovn: address
sets, a port group, 29100/29150 reroutes, 29090 drops, BFD rows, bfd@vpc1 with its
HA_Chassis_Group), the API holds Kube-OVN's kubeovn.io objects and their Deployments. vegd runs
in the vegd.io group, where the operator created gateways of the same names. vegd must leave
every one of those rows byte-identical (ovsdb-client dump, _uuid and every column), the
Deployments and the kubeovn.io objects at their resourceVersion, write nothing for those
gateways, and say so: Validated=False/ForeignController, a Warning Event, the metric. A third
vegd.io gateway without a Kube-OVN counterpart is served normally.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from kubeapi.resources import default_registry
from kubeovn_rows import (
    KubeOvnGateway,
    kube_ovn_rows,
    router_policy_refs,
    seed_gateways,
    write_bfd_port,
    write_gateway,
)
from kubernetes import client
from ovnstack import wait_for
from prometheus_client import generate_latest
from scenario import ROOT, SEED, add_base_topology
from vegd_harness import InProcessController

from vegd.kube.resources import serve_gateways_in
from vegd.plan.names import owner_hash

VEGD_GROUP = "vegd.io"
VEGD_CRD = ROOT / "deploy" / "vegd-group" / "vpc-egress-gateway.yaml"
PLURAL = "vpc-egress-gateways"


@pytest.fixture
def both_groups():
    from kubeapi.fixture import KubeApi  # here: pytest registers the module as a plugin first

    reg = default_registry()
    reg.add_crd(yaml.safe_load(VEGD_CRD.read_text()))
    api = KubeApi(reg)
    try:
        yield api
    finally:
        api.close()
        serve_gateways_in("kubeovn.io")  # the process-wide default for the other tests


def seed_gateway_objects() -> list[dict]:
    docs = []
    for name in ("gateway1.yaml", "gateway2.yaml"):
        docs += [d for d in yaml.safe_load_all((SEED / name).read_text())
                 if d and d["kind"] == "VpcEgressGateway"]
    return docs


def kube_ovn_deployment(veg: dict) -> dict:
    """Kube-OVN's workload (§5.1): <prefix><name>, its labels, an owner reference to its VEG."""
    name = veg["metadata"]["name"]
    labels = {"app": "vpc-egress-gateway", "ovn.kubernetes.io/vpc-egress-gateway": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": labels,
                         "annotations": {"ovn.kubernetes.io/generate-hash": "0123456789ab"},
                         "ownerReferences": [{"apiVersion": "kubeovn.io/v1",
                                              "kind": "VpcEgressGateway", "name": name,
                                              "uid": veg["metadata"]["uid"]}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "gateway",
                                                           "image": "kubeovn/kube-ovn"}]}}}}


def write_kube_ovn_side(ovn, api) -> dict[str, str]:
    """Kube-OVN's NB rows, objects and Deployments; returns resourceVersions by object."""
    ovn.nbctl("lsp-add", "subnet1", "pod1.default", "--", "lsp-set-addresses", "pod1.default",
              "0a:58:c0:a8:00:0a 192.168.0.10")
    write_bfd_port(ovn, "vpc1", "10.255.255.255", ["3c8e1b4e-0c0f-4d2a-9e1d-000000000001"])
    gw1, gw2 = seed_gateways()
    gw1.local = {"node.kube.ovn.worker": ["10.16.0.12"]}
    gw2.selected_ports = ["pod1.default"]
    for gw in (gw1, gw2):
        write_gateway(ovn, gw)
    versions = {}
    for veg in seed_gateway_objects():
        stored = api.create(veg)
        versions[f"kubeovn.io/{veg['metadata']['name']}"] = stored["metadata"]["resourceVersion"]
        dep = api.create(kube_ovn_deployment(stored))
        versions[f"Deployment/{dep['metadata']['name']}"] = dep["metadata"]["resourceVersion"]
    return versions


def test_vegd_group_leaves_kube_ovn_alone_and_reports_it(fresh_ovn, both_groups):
    ovn, api = fresh_ovn, both_groups
    add_base_topology(ovn)
    api.create_all(d for d in yaml.safe_load_all((SEED / "cluster.yaml").read_text())
                   if d and not (d["kind"] == "Namespace" and d["metadata"]["name"] == "default"))
    versions = write_kube_ovn_side(ovn, api)
    before = kube_ovn_rows(ovn)
    assert {t: len(r) for t, r in before.items()} == {
        "Address_Set": 6, "Port_Group": 1, "Logical_Router_Policy": 10 + 3, "BFD": 2,
        "Logical_Router_Port": 1, "HA_Chassis_Group": 1, "HA_Chassis": 1}
    # (+ 3: the base topology's own Kube-OVN policies, 31000/30000, also vendor kube-ovn)
    refs = {r: router_policy_refs(ovn, r) for r in ("ovn-cluster", "vpc1")}

    # the operator's vegd.io gateways: the same two, and one Kube-OVN does not run
    custom = client.CustomObjectsApi(api.api_client())
    for veg in seed_gateway_objects():
        body = copy.deepcopy(veg)
        body["apiVersion"] = f"{VEGD_GROUP}/v1"
        custom.create_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, body)
    third = copy.deepcopy(seed_gateway_objects()[0])
    third["apiVersion"] = f"{VEGD_GROUP}/v1"
    third["metadata"]["name"] = "gateway3"
    third["spec"]["policies"] = [{"snat": True, "ipBlocks": ["10.17.0.0/24"]}]
    custom.create_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, third)

    vegd = InProcessController(api, ovn, api_group=VEGD_GROUP).start()
    try:
        def condition(name: str) -> dict:
            obj = custom.get_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, name)
            return next((c for c in (obj.get("status") or {}).get("conditions") or []
                         if c["type"] == "Validated"), {})

        wait_for(lambda: all(condition(n).get("reason") == "ForeignController"
                             for n in ("gateway1", "gateway2")), 20,
                 what="Validated=False/ForeignController on both")
        # gateway3 is served: vegd's own rows and Deployment
        wait_for(lambda: ovn.nb_rows("Address_Set", "external_ids:vendor=vegd",
                                     'external_ids:vpc-egress-gateway="default/gateway3"') or
                 ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd",
                             'external_ids:vpc-egress-gateway="default/gateway3"'), 20,
                 what="vegd's rows for gateway3")
        wait_for(lambda: vegd.idle(), 20, what="vegd idle")
        message = condition("gateway2")["message"]
        assert "Deployment default/gateway2" in message and "vendor kube-ovn" in message, message
        assert "BFD" in message and "Logical_Router_Policy" in message, message
        metrics = generate_latest(vegd.controller.metrics.registry).decode()
        assert "vegd_foreign_gateways 2" in metrics and "vegd_foreign_vpcs 1" in metrics, metrics
        events = client.CoreV1Api(api.api_client()).list_namespaced_event("default").items
        assert {e.involved_object.name for e in events if e.reason == "ForeignController"
                and e.type == "Warning"} == {"gateway1", "gateway2"}
    finally:
        vegd.stop()

    assert kube_ovn_rows(ovn) == before  # byte-identical: _uuid and every column
    assert {r: router_policy_refs(ovn, r) for r in refs} == refs
    for key, rv in versions.items():
        kind, name = key.split("/")
        if kind == "Deployment":
            now = client.AppsV1Api(api.api_client()).read_namespaced_deployment(name, "default")
            assert now.metadata.resource_version == rv, key
        else:
            now = custom.get_namespaced_custom_object("kubeovn.io", "v1", "default", PLURAL, name)
            assert now["metadata"]["resourceVersion"] == rv, key
    for name in ("gateway1", "gateway2"):
        assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd",
                               f'external_ids:vpc-egress-gateway="default/{name}"')
        assert not ovn.nb_rows("Address_Set", "external_ids:vendor=vegd",
                               f'external_ids:vpc-egress-gateway="default/{name}"')


def test_kube_ovn_rows_helper_is_faithful(fresh_ovn):
    """The stand-in writes §3's shapes: two matches per family, BFD timers swapped, drops for
    af=6 too with BFD, compat sets only without selectors."""
    ovn = fresh_ovn
    add_base_topology(ovn)
    gw = KubeOvnGateway("default/gateway2", "vpc1", ["192.168.0.0/24"], ["192.168.0.2"],
                        bfd=(800, 1000, 3), bfd_port="bfd@vpc1")
    write_gateway(ovn, gw)
    pols = " ".join(ovn.nbctl("lr-policy-list", "vpc1").split())
    h = owner_hash("default/gateway2")
    for line in (f"29100 ip4.src == $VEG.{h}.ipv4", f"29100 ip4.src == $VEG.{h}_ip4",
                 f"29090 ip4.src == $VEG.{h}.ipv4", f"29090 ip6.src == $VEG.{h}_ip6"):
        assert line in pols, pols
    bfd = ovn.nb_rows("BFD")[0]
    assert (bfd["min_rx"], bfd["min_tx"]) == ("1000", "800")


def test_migrated_twin_runs_beside_the_old_rows_and_deployment(fresh_ovn, both_groups):
    """`vegd migrate --objects-out`'s twin (annotation vegd.io/migrated-from, Deployment prefix
    vegd-): lingering Kube-OVN rows of the same key do not hold it off; vegd runs its own
    Deployment next to Kube-OVN's and writes its own rows, and still touches none of theirs."""
    from vegd.migrate_twins import twin

    ovn, api = fresh_ovn, both_groups
    add_base_topology(ovn)
    api.create_all(d for d in yaml.safe_load_all((SEED / "cluster.yaml").read_text())
                   if d and not (d["kind"] == "Namespace" and d["metadata"]["name"] == "default"))
    veg = api.create(seed_gateway_objects()[0])                       # Kube-OVN's gateway1
    old = api.create(kube_ovn_deployment(veg))
    write_gateway(ovn, seed_gateways()[0])
    before = kube_ovn_rows(ovn)
    body = twin(seed_gateway_objects()[0], VEGD_GROUP)
    assert body["spec"]["prefix"] == "vegd-"
    custom = client.CustomObjectsApi(api.api_client())
    custom.create_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, body)
    apps = client.AppsV1Api(api.api_client())

    def deployment(name):
        try:
            return apps.read_namespaced_deployment(name, "default")
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    vegd = InProcessController(api, ovn, api_group=VEGD_GROUP).start()
    try:
        wait_for(lambda: deployment("vegd-gateway1") is not None, 20,
                 what="vegd's Deployment vegd-gateway1")
        wait_for(lambda: ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd",
                                     'external_ids:vpc-egress-gateway="default/gateway1"'), 20,
                 what="vegd's rows for the twin")
        wait_for(lambda: vegd.idle(), 20, what="vegd idle")
        ours = deployment("vegd-gateway1")
        assert ours.metadata.owner_references[0].api_version == f"{VEGD_GROUP}/v1"
        metrics = generate_latest(vegd.controller.metrics.registry).decode()
        assert "vegd_foreign_gateways 0" in metrics
    finally:
        vegd.stop()
    assert kube_ovn_rows(ovn) == before
    assert deployment("gateway1").metadata.resource_version == old["metadata"]["resourceVersion"]


def test_other_controllers_reroutes_of_the_same_sources_hold_the_gateway_off(fresh_ovn,
                                                                            both_groups):
    """Kube-OVN runs gateways of other names whose sources are vegd's: legacy1 reroutes
    10.16.0.0/16 (gateway1's subnet) on ovn-cluster, legacy2 reroutes the selected pod
    192.168.0.10 (a port group: `$VEG.<h>_ip4`), inside gateway2's 192.168.0.0/24, on vpc1.
    vegd holds both off (Validated=False/ForeignSourceOverlap, an Event, the gauge), writes
    nothing for them and leaves Kube-OVN's rows byte-identical. gateway3 (10.17.0.0/24, BFD off)
    is served although another vendor's src-ip route covers its source: in the policy modes
    vegd's reroute comes after routing. With legacy1's rows gone, gateway1 is served."""
    ovn, api = fresh_ovn, both_groups
    add_base_topology(ovn)
    api.create_all(d for d in yaml.safe_load_all((SEED / "cluster.yaml").read_text())
                   if d and not (d["kind"] == "Namespace" and d["metadata"]["name"] == "default"))
    ovn.nbctl("lsp-add", "subnet1", "pod1.default", "--", "lsp-set-addresses", "pod1.default",
              "0a:58:c0:a8:00:0a 192.168.0.10")
    write_gateway(ovn, KubeOvnGateway("default/legacy1", "ovn-cluster", ["10.16.0.0/16"],
                                      ["10.16.0.40"]))
    write_gateway(ovn, KubeOvnGateway("default/legacy2", "vpc1", [], ["192.168.0.40"],
                                      selected_ports=["pod1.default"]))
    ovn.nbctl("--", "--id=@r", "create", "Logical_Router_Static_Route", "policy=src-ip",
              "ip_prefix=10.17.0.0/16", "nexthop=10.16.0.99", "external_ids:vendor=kube-ovn",
              "--", "add", "Logical_Router", "ovn-cluster", "static_routes", "@r")
    before = kube_ovn_rows(ovn)
    routes_before = ovn.nbctl("lr-route-list", "ovn-cluster")

    custom = client.CustomObjectsApi(api.api_client())
    gateways = seed_gateway_objects()
    third = copy.deepcopy(gateways[0])
    third["metadata"]["name"] = "gateway3"
    third["spec"]["policies"] = [{"snat": True, "ipBlocks": ["10.17.0.0/24"]}]
    for veg in (*gateways, third):
        body = copy.deepcopy(veg)
        body["apiVersion"] = f"{VEGD_GROUP}/v1"
        custom.create_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, body)

    def condition(name: str) -> dict:
        obj = custom.get_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, name)
        return next((c for c in (obj.get("status") or {}).get("conditions") or []
                     if c["type"] == "Validated"), {})

    def vegd_rows(name: str) -> list:
        return ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd",
                           f'external_ids:vpc-egress-gateway="default/{name}"') + \
            ovn.nb_rows("Logical_Router_Static_Route", "external_ids:vendor=vegd",
                        f'external_ids:vpc-egress-gateway="default/{name}"')

    vegd = InProcessController(api, ovn, api_group=VEGD_GROUP).start()
    try:
        wait_for(lambda: all(condition(n).get("reason") == "ForeignSourceOverlap"
                             for n in ("gateway1", "gateway2")), 20,
                 what="Validated=False/ForeignSourceOverlap on gateway1 and gateway2")
        wait_for(lambda: vegd_rows("gateway3"), 20, what="vegd's rows for gateway3")
        wait_for(lambda: vegd.idle(), 20, what="vegd idle")
        assert condition("gateway3")["status"] == "True"
        h1, h2 = owner_hash("default/legacy1"), owner_hash("default/legacy2")
        msg1, msg2 = condition("gateway1")["message"], condition("gateway2")["message"]
        assert f"29100 'ip4.src == $VEG.{h1}.ipv4' of default/legacy1 overlaps 10.16.0.0/16" \
            in msg1 and "vendor kube-ovn" in msg1, msg1
        assert f"'ip4.src == $VEG.{h2}_ip4' of default/legacy2 overlaps 192.168.0.0/24" \
            in msg2, msg2
        for name in ("gateway1", "gateway2"):
            assert not vegd_rows(name), name
        metrics = generate_latest(vegd.controller.metrics.registry).decode()
        assert "vegd_foreign_gateways 2" in metrics, metrics
        events = client.CoreV1Api(api.api_client()).list_namespaced_event("default").items
        assert {e.involved_object.name for e in events if e.reason == "ForeignSourceOverlap"
                and e.type == "Warning"} == {"gateway1", "gateway2"}
        assert kube_ovn_rows(ovn) == before  # byte-identical: _uuid and every column
        assert "10.16.0.99" in routes_before and \
            ovn.nbctl("lr-route-list", "ovn-cluster") == routes_before

        # Kube-OVN's legacy1 deleted (its controller removes its rows): the next event of
        # gateway1 finds no overlap and serves it
        for row in ovn.nb_rows("Logical_Router_Policy",
                               'external_ids:vpc-egress-gateway="default/legacy1"'):
            ovn.nbctl("lr-policy-del", "ovn-cluster", row["_uuid"])
        custom.patch_namespaced_custom_object(VEGD_GROUP, "v1", "default", PLURAL, "gateway1",
                                              {"metadata": {"labels": {"touched": "1"}}})
        wait_for(lambda: condition("gateway1").get("status") == "True" and vegd_rows("gateway1"),
                 20, what="gateway1 served once legacy1's reroutes are gone")
        assert condition("gateway2").get("reason") == "ForeignSourceOverlap"
    finally:
        vegd.stop()
