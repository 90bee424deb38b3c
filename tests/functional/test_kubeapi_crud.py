"""The test API server, driven through the official kubernetes client: CRUD, concurrency,
patches, subresources, selectors, pagination, validation and discovery."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytest_plugins = ["kubeapi.fixture"]

G, V, VEG = "kubeovn.io", "v1", "vpc-egress-gateways"


def pod(name, labels=None, node=None, ns="default"):
    spec = {"containers": [{"name": "c", "image": "busybox:1"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}}, "spec": spec}


def veg(name, **spec):
    body = {"externalSubnet": "macvlan1", "policies": [{"snat": True, "subnets": ["ovn-default"]}]}
    body.update(spec)
    return {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
            "metadata": {"name": name, "namespace": "default"}, "spec": body}


def deployment(name, replicas=1):
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}}


def status_of(exc: ApiException) -> dict:
    return json.loads(exc.body)


@pytest.fixture
def core(kubeapi):
    return client.CoreV1Api(kubeapi.api_client())


@pytest.fixture
def custom(kubeapi):
    return client.CustomObjectsApi(kubeapi.api_client())


@pytest.fixture
def apps(kubeapi):
    return client.AppsV1Api(kubeapi.api_client())


def test_create_get_list_delete_pod(core):
    created = core.create_namespaced_pod("default", pod("p1", {"app": "x"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    assert created.status.phase == "Pending"  # status on create is the server's
    got = core.read_namespaced_pod("p1", "default")
    assert got.metadata.resource_version == created.metadata.resource_version
    listed = core.list_namespaced_pod("default")
    assert [p.metadata.name for p in listed.items] == ["p1"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    core.delete_namespaced_pod("p1", "default")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("p1", "default")
    assert e.value.status == 404
    assert status_of(e.value)["reason"] == "NotFound"
    assert status_of(e.value)["message"] == 'pods "p1" not found'


def test_resource_version_is_global_and_increasing(core, custom):
    a = core.create_namespaced_pod("default", pod("a"))
    b = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    c = core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "y"}}})
    rvs = [int(a.metadata.resource_version), int(b["metadata"]["resourceVersion"]),
           int(c.metadata.resource_version)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3


def test_create_existing_is_409_already_exists(core):
    core.create_namespaced_pod("default", pod("p"))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("default", pod("p"))
    assert e.value.status == 409
    assert status_of(e.value)["reason"] == "AlreadyExists"


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod("nope", pod("p", ns="nope"))
    assert e.value.status == 404
    assert 'namespaces "nope" not found' in status_of(e.value)["message"]


def test_generate_name(core):
    body = pod("x")
    del body["metadata"]["name"]
    body["metadata"]["generateName"] = "gw-"
    created = core.create_namespaced_pod("default", body)
    assert created.metadata.name.startswith("gw-") and len(created.metadata.name) == 8


def test_update_with_stale_resource_version_conflicts(custom):
    first = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    fresh = dict(first, spec=dict(first["spec"], replicas=2))
    updated = custom.replace_namespaced_custom_object(G, V, "default", VEG, "g", fresh)
    assert updated["spec"]["replicas"] == 2
    stale = dict(first, spec=dict(first["spec"], replicas=3))
    with pytest.raises(ApiException) as e:
        custom.replace_namespaced_custom_object(G, V, "default", VEG, "g", stale)
    assert e.value.status == 409
    assert status_of(e.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(e.value)["message"]
    # an unconditional update (no resourceVersion) is allowed
    stale["metadata"] = {k: v for k, v in stale["metadata"].items() if k != "resourceVersion"}
    assert custom.replace_namespaced_custom_object(G, V, "default", VEG, "g",
                                                   stale)["spec"]["replicas"] == 3


def test_generation_bumps_on_spec_only(custom):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    assert g["metadata"]["generation"] == 1
    g = custom.patch_namespaced_custom_object(G, V, "default", VEG, "g",
                                              {"metadata": {"labels": {"a": "b"}}})
    assert g["metadata"]["generation"] == 1
    g = custom.patch_namespaced_custom_object_status(
        G, V, "default", VEG, "g", {"status": {"phase": "Processing", "conditions": []}})
    assert g["metadata"]["generation"] == 1
    g = custom.patch_namespaced_custom_object(G, V, "default", VEG, "g",
                                              {"spec": {"replicas": 2}})
    assert g["metadata"]["generation"] == 2


def test_noop_update_keeps_resource_version(custom):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    again = custom.replace_namespaced_custom_object(G, V, "default", VEG, "g", g)
    assert again["metadata"]["resourceVersion"] == g["metadata"]["resourceVersion"]


def test_status_subresource_separates_spec_and_status(custom):
    g = custom.create_namespaced_custom_object(
        G, V, "default", VEG, dict(veg("g"), status={"phase": "Completed", "conditions": []}))
    assert "status" not in g  # dropped on create, as for every CRD with a status subresource
    # main resource update ignores status
    g["status"] = {"phase": "Completed", "ready": True, "conditions": []}
    g = custom.replace_namespaced_custom_object(G, V, "default", VEG, "g", g)
    assert "status" not in g
    # status update ignores everything but status
    body = dict(g, spec=dict(g["spec"], replicas=5),
                status={"phase": "Completed", "ready": True, "conditions": []})
    g = custom.replace_namespaced_custom_object_status(G, V, "default", VEG, "g", body)
    assert g["status"]["ready"] is True and g["spec"]["replicas"] == 1
    g = custom.patch_namespaced_custom_object_status(G, V, "default", VEG, "g",
                                                     {"status": {"internalIPs": ["10.16.0.12"]}})
    assert g["status"]["internalIPs"] == ["10.16.0.12"] and g["status"]["ready"] is True


def test_veg_crd_defaults_pruning_and_validation(custom):
    body = veg("g")
    body["spec"]["unknownField"] = 1
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, body)
    assert g["spec"]["replicas"] == 1 and g["spec"]["trafficPolicy"] == "Cluster"
    assert g["spec"]["bfd"] == {"enabled": False, "minRX": 1000, "minTX": 1000, "multiplier": 3}
    assert g["spec"]["bfdMode"] == "route" and "unknownField" not in g["spec"]
    for bad in ({"replicas": 11}, {"trafficPolicy": "Foo"}, {"bfd": {"minRX": 0}},
                {"policies": []}, {"policies": [{"snat": True}]},
                {"replicas": 2, "externalIPs": ["172.17.0.10"]}):
        with pytest.raises(ApiException) as e:
            custom.create_namespaced_custom_object(G, V, "default", VEG, veg("bad", **bad))
        assert e.value.status == 422, bad
        assert status_of(e.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(G, V, "default", VEG, "g", {"spec": {"replicas": 11}})
    assert e.value.status == 422


def test_prefix_is_immutable(custom):
    custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g", prefix="veg-"))
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(G, V, "default", VEG, "g", {"spec": {"prefix": "x-"}})
    assert e.value.status == 422 and "immutable" in status_of(e.value)["message"]


def test_patch_flavours_on_core_objects(core):
    core.create_namespaced_pod("default", pod("p", {"a": "1", "b": "2"}))
    # dict body: strategic merge patch (finalizers merge as a set)
    core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": ["x/one"]}})
    p = core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": ["x/two"],
                                                                "labels": {"b": None}}})
    assert p.metadata.finalizers == ["x/one", "x/two"]
    assert p.metadata.labels == {"a": "1"}
    # list body: JSON patch
    p = core.patch_namespaced_pod("p", "default", [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "9"},
        {"op": "remove", "path": "/metadata/finalizers/0"}])
    assert p.metadata.labels == {"a": "9"} and p.metadata.finalizers == ["x/two"]
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod("p", "default", [{"op": "test", "path": "/metadata/labels/a",
                                                    "value": "1"}])
    assert e.value.status == 422
    # merge patch replaces lists
    p = core.patch_namespaced_pod("p", "default", {"metadata": {"finalizers": ["x/three"]}},
                                  _content_type="application/merge-patch+json")
    assert p.metadata.finalizers == ["x/three"]


def test_patch_with_resource_version_is_a_precondition(custom):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    custom.patch_namespaced_custom_object(G, V, "default", VEG, "g", {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(
            G, V, "default", VEG, "g",
            {"metadata": {"resourceVersion": g["metadata"]["resourceVersion"]},
             "spec": {"replicas": 3}})
    assert e.value.status == 409


def test_custom_resources_reject_strategic_merge_patch(custom):
    custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(
            G, V, "default", VEG, "g", {"spec": {"replicas": 2}},
            _content_type="application/strategic-merge-patch+json")
    assert e.value.status == 415


def test_json_patch_on_custom_object(custom):
    custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    g = custom.patch_namespaced_custom_object(
        G, V, "default", VEG, "g",
        [{"op": "add", "path": "/metadata/finalizers", "value": ["vegd.io/cleanup"]}],
        _content_type="application/json-patch+json")
    assert g["metadata"]["finalizers"] == ["vegd.io/cleanup"]


def test_veg_scale_subresource(custom):
    custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    custom.patch_namespaced_custom_object_status(
        G, V, "default", VEG, "g",
        {"status": {"replicas": 1, "phase": "Completed", "conditions": [],
                    "labelSelector": "app=vpc-egress-gateway,ovn.kubernetes.io/"
                                     "vpc-egress-gateway=g"}})
    scale = custom.get_namespaced_custom_object_scale(G, V, "default", VEG, "g")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 1 and scale["status"]["replicas"] == 1
    assert scale["status"]["selector"].startswith("app=vpc-egress-gateway")
    scale["spec"]["replicas"] = 2
    out = custom.replace_namespaced_custom_object_scale(G, V, "default", VEG, "g", scale)
    assert out["spec"]["replicas"] == 2
    g = custom.get_namespaced_custom_object(G, V, "default", VEG, "g")
    assert g["spec"]["replicas"] == 2 and g["metadata"]["generation"] == 2
    custom.patch_namespaced_custom_object_scale(G, V, "default", VEG, "g",
                                                {"spec": {"replicas": 3}})
    assert custom.get_namespaced_custom_object(G, V, "default", VEG, "g")["spec"]["replicas"] == 3
    with pytest.raises(ApiException) as e:  # stale scale
        custom.replace_namespaced_custom_object_scale(G, V, "default", VEG, "g", scale)
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:  # the CRD's maximum applies through scale too
        custom.patch_namespaced_custom_object_scale(G, V, "default", VEG, "g",
                                                    {"spec": {"replicas": 11}})
    assert e.value.status == 422


def test_deployment_defaults_status_and_scale(apps):
    d = apps.create_namespaced_deployment("default", deployment("gw"))
    assert d.spec.strategy.type == "RollingUpdate" and d.spec.revision_history_limit == 10
    assert d.metadata.generation == 1
    st = apps.patch_namespaced_deployment_status(
        "gw", "default", {"status": {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}})
    assert st.status.ready_replicas == 1 and st.metadata.generation == 1
    scale = apps.read_namespaced_deployment_scale("gw", "default")
    assert scale.spec.replicas == 1 and scale.status.selector == "app=gw"
    apps.patch_namespaced_deployment_scale("gw", "default", {"spec": {"replicas": 3}})
    d = apps.read_namespaced_deployment("gw", "default")
    assert d.spec.replicas == 3 and d.metadata.generation == 2
    assert d.status.ready_replicas == 1  # status untouched by scale
    bad = deployment("bad")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment("default", bad)
    assert e.value.status == 422


def test_label_selectors(core):
    core.create_namespaced_pod("default", pod("a", {"app": "gw", "tier": "x"}))
    core.create_namespaced_pod("default", pod("b", {"app": "gw", "tier": "y"}))
    core.create_namespaced_pod("default", pod("c", {"app": "other"}))

    def names(sel):
        return sorted(p.metadata.name for p in
                      core.list_namespaced_pod("default", label_selector=sel).items)

    assert names("app=gw") == ["a", "b"]
    assert names("app==gw,tier!=x") == ["b"]
    assert names("tier in (x, z)") == ["a"]
    assert names("tier notin (x)") == ["b", "c"]
    assert names("tier") == ["a", "b"]
    assert names("!tier") == ["c"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod("default", label_selector="app in (gw")
    assert e.value.status == 400


def test_field_selectors(core):
    core.create_namespaced_pod("default", pod("a", node="n1"))
    core.create_namespaced_pod("default", pod("b", node="n2"))
    items = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1").items
    assert [p.metadata.name for p in items] == ["a"]
    items = core.list_namespaced_pod("default", field_selector="metadata.name!=a").items
    assert [p.metadata.name for p in items] == ["b"]
    items = core.list_pod_for_all_namespaces(field_selector="metadata.namespace=kube-system").items
    assert items == []
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert e.value.status == 400


def test_pagination_and_exact_list(core, kubeapi):
    for i in range(5):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    page = core.list_namespaced_pod("default", limit=2)
    assert [p.metadata.name for p in page.items] == ["p0", "p1"]
    assert page.metadata.remaining_item_count == 3
    core.delete_namespaced_pod("p3", "default")  # pages keep the first page's snapshot
    page2 = core.list_namespaced_pod("default", limit=10, _continue=page.metadata._continue)
    assert [p.metadata.name for p in page2.items] == ["p2", "p3", "p4"]
    old_rv = page.metadata.resource_version
    exact = core.list_namespaced_pod("default", resource_version=old_rv,
                                     resource_version_match="Exact")
    assert len(exact.items) == 5
    kubeapi.compact()
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod("default", resource_version=old_rv,
                                 resource_version_match="Exact")
    assert e.value.status == 410
    with pytest.raises(ApiException) as e:
        core.list_namespaced_pod("default", limit=10, _continue=page.metadata._continue)
    assert e.value.status == 410
    assert len(core.list_namespaced_pod("default", resource_version="0").items) == 4


def test_dry_run_does_not_store(core):
    core.create_namespaced_pod("default", pod("p"), dry_run="All")
    assert core.list_namespaced_pod("default").items == []


def test_cluster_scoped_kinds_and_nads(kubeapi, custom, core):
    custom.create_cluster_custom_object(G, V, "vpcs", {
        "apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "vpc1"},
        "spec": {"bfdPort": {"enabled": True, "ip": "10.255.255.255"}}})
    custom.patch_cluster_custom_object_status(G, V, "vpcs", "vpc1",
                                              {"status": {"bfdPort": {"name": "bfd@vpc1"}}})
    vpc = custom.get_cluster_custom_object(G, V, "vpcs", "vpc1")
    assert vpc["status"]["bfdPort"]["name"] == "bfd@vpc1"
    custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", "default",
                                           "network-attachment-definitions", {
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "eth1"}, "spec": {"config": "{}"}})
    core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                      "status": {"addresses": [{"type": "InternalIP", "address": "1.2.3.4"}]}})
    assert core.read_node("n1").status.addresses[0].address == "1.2.3.4"


def test_leases_and_events(kubeapi):
    c = kubeapi.api_client()
    coord = client.CoordinationV1Api(c)
    lease = coord.create_namespaced_lease("default", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "vegd"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 4}})
    lease.spec.holder_identity = "b"
    coord.replace_namespaced_lease("vegd", "default", lease)
    with pytest.raises(ApiException) as e:
        coord.replace_namespaced_lease("vegd", "default", lease)  # stale: the loser of a race
    assert e.value.status == 409
    client.CoreV1Api(c).create_namespaced_event("default", {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
        "involvedObject": {"kind": "VpcEgressGateway", "name": "g", "namespace": "default"},
        "reason": "Processing", "message": "m", "type": "Normal"})
    client.EventsV1Api(c).create_namespaced_event("default", {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e2"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "vegd",
        "reportingInstance": "vegd-0", "action": "Reconcile", "reason": "Processing",
        "type": "Normal"})
    evs = client.CoreV1Api(c).list_namespaced_event(
        "default", field_selector="involvedObject.kind=VpcEgressGateway")
    assert [e.reason for e in evs.items] == ["Processing"]


def test_discovery(kubeapi):
    c = kubeapi.api_client()
    assert "v1" in client.CoreApi(c).get_api_versions().versions
    groups = {g.name for g in client.ApisApi(c).get_api_versions().groups}
    assert {"apps", "coordination.k8s.io", "events.k8s.io", "kubeovn.io",
            "k8s.cni.cncf.io"} <= groups
    res = client.CustomObjectsApi(c).get_api_resources(G, V)
    byname = {r.name: r for r in res.resources}
    assert byname[VEG].kind == "VpcEgressGateway" and "veg" in byname[VEG].short_names
    assert {f"{VEG}/status", f"{VEG}/scale"} <= set(byname)
    assert client.VersionApi(c).get_code().major == "1"


def test_load_yaml_helper(kubeapi, custom):
    objs = kubeapi.load_yaml("""
apiVersion: kubeovn.io/v1
kind: Subnet
metadata: {name: macvlan1}
spec: {protocol: IPv4, cidrBlock: 172.17.0.0/16}
status: {v4availableIPs: 10}
---
apiVersion: kubeovn.io/v1
kind: VpcEgressGateway
metadata: {name: gateway1, namespace: default}
spec:
  vpc: ovn-cluster
  replicas: 1
  externalSubnet: macvlan1
  policies: [{snat: true, subnets: [ovn-default]}]
""")
    assert [o["kind"] for o in objs] == ["Subnet", "VpcEgressGateway"]
    assert objs[0]["status"] == {"v4availableIPs": 10}  # written through /status
    assert custom.get_namespaced_custom_object(G, V, "default", VEG, "gateway1")["spec"]["vpc"] \
        == "ovn-cluster"
