"""The test API server's deletion lifecycle: finalizers and deletionTimestamp, delete
preconditions, cascading deletion through ownerReferences, and namespace termination."""

from __future__ import annotations

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from ovnstack import wait_for

pytest_plugins = ["kubeapi.fixture"]

G, V, VEG = "kubeovn.io", "v1", "vpc-egress-gateways"
FINALIZER = "vegd.io/cleanup"


def veg(name, finalizers=None, ns="default"):
    meta = {"name": name, "namespace": ns}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway", "metadata": meta,
            "spec": {"externalSubnet": "m", "policies": [{"snat": True, "subnets": ["s"]}]}}


def deployment(name, owner=None, ns="default", block=False):
    labels = {"app": name}
    meta = {"name": name, "namespace": ns, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [{
            "apiVersion": owner["apiVersion"], "kind": owner["kind"],
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": block}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}


@pytest.fixture
def custom(kubeapi):
    return client.CustomObjectsApi(kubeapi.api_client())


@pytest.fixture
def apps(kubeapi):
    return client.AppsV1Api(kubeapi.api_client())


def gone(fn, *args):
    try:
        fn(*args)
    except ApiException as e:
        if e.status == 404:
            return True
        raise
    return False


def test_finalizer_holds_the_object_until_removed(custom):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g", [FINALIZER]))
    rv = g["metadata"]["resourceVersion"]
    out = custom.delete_namespaced_custom_object(G, V, "default", VEG, "g")
    assert out["metadata"]["deletionTimestamp"]  # the object (held), not a Status
    held = custom.get_namespaced_custom_object(G, V, "default", VEG, "g")
    assert held["metadata"]["deletionTimestamp"] and held["metadata"]["generation"] == 2
    # a second delete changes nothing
    again = custom.delete_namespaced_custom_object(G, V, "default", VEG, "g")
    assert again["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]
    # status can still be written while terminating; new finalizers cannot be added
    custom.patch_namespaced_custom_object_status(G, V, "default", VEG, "g", {
        "status": {"phase": "Processing", "conditions": []}})
    with pytest.raises(ApiException) as e:
        custom.patch_namespaced_custom_object(G, V, "default", VEG, "g", {
            "metadata": {"finalizers": [FINALIZER, "other/one"]}})
    assert e.value.status == 422
    custom.patch_namespaced_custom_object(G, V, "default", VEG, "g",
                                          [{"op": "remove", "path": "/metadata/finalizers"}],
                                          _content_type="application/json-patch+json")
    assert gone(custom.get_namespaced_custom_object, G, V, "default", VEG, "g")
    evs = []
    for ev in watch.Watch().stream(custom.list_namespaced_custom_object, G, V, "default", VEG,
                                   resource_version=rv, timeout_seconds=5):
        evs.append(ev)
        if ev["type"] == "DELETED":
            break
    assert [e["type"] for e in evs] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert evs[0]["object"]["metadata"]["deletionTimestamp"]


def test_delete_without_finalizers_answers_a_status(custom):
    custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    out = custom.delete_namespaced_custom_object(G, V, "default", VEG, "g")
    assert out["kind"] == "Status" and out["status"] == "Success"
    with pytest.raises(ApiException) as e:
        custom.delete_namespaced_custom_object(G, V, "default", VEG, "g")
    assert e.value.status == 404


def test_delete_preconditions(custom):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    custom.patch_namespaced_custom_object(G, V, "default", VEG, "g", {"spec": {"replicas": 2}})
    with pytest.raises(ApiException) as e:
        custom.delete_namespaced_custom_object(
            G, V, "default", VEG, "g",
            body={"preconditions": {"resourceVersion": g["metadata"]["resourceVersion"]}})
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        custom.delete_namespaced_custom_object(G, V, "default", VEG, "g",
                                               body={"preconditions": {"uid": "nope"}})
    assert e.value.status == 409
    custom.delete_namespaced_custom_object(G, V, "default", VEG, "g",
                                           body={"preconditions": {"uid": g["metadata"]["uid"]}})
    assert gone(custom.get_namespaced_custom_object, G, V, "default", VEG, "g")


def test_background_cascade_deletes_owned_deployments(custom, apps):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    apps.create_namespaced_deployment("default", deployment("g", owner=g))
    apps.create_namespaced_deployment("default", deployment("unrelated"))
    custom.delete_namespaced_custom_object(G, V, "default", VEG, "g")
    wait_for(lambda: gone(apps.read_namespaced_deployment, "g", "default"),
             timeout=5, what="garbage collection of the owned Deployment")
    assert apps.read_namespaced_deployment("unrelated", "default").metadata.name == "unrelated"


def test_cascade_waits_for_the_owner_finalizer(custom, apps):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g", [FINALIZER]))
    apps.create_namespaced_deployment("default", deployment("g", owner=g))
    custom.delete_namespaced_custom_object(G, V, "default", VEG, "g")
    # the owner still exists (terminating): its dependents stay
    assert apps.read_namespaced_deployment("g", "default").metadata.deletion_timestamp is None
    custom.patch_namespaced_custom_object(G, V, "default", VEG, "g",
                                          {"metadata": {"finalizers": None}})
    wait_for(lambda: gone(apps.read_namespaced_deployment, "g", "default"), timeout=5,
             what="garbage collection after the finalizer went")


def test_dependent_with_a_dangling_owner_is_collected(apps):
    ghost = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
             "metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}}
    apps.create_namespaced_deployment("default", deployment("orphan", owner=ghost))
    wait_for(lambda: gone(apps.read_namespaced_deployment, "orphan", "default"), timeout=5,
             what="collection of a dependent whose owner does not exist")


def test_orphan_propagation_keeps_dependents(custom, apps):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    apps.create_namespaced_deployment("default", deployment("g", owner=g))
    custom.delete_namespaced_custom_object(G, V, "default", VEG, "g",
                                           propagation_policy="Orphan")
    d = apps.read_namespaced_deployment("g", "default")
    assert d.metadata.owner_references is None


def test_foreground_deletion_removes_dependents_first(custom, apps):
    g = custom.create_namespaced_custom_object(G, V, "default", VEG, veg("g"))
    dep = deployment("g", owner=g, block=True)
    dep["metadata"]["finalizers"] = [FINALIZER]  # hold the dependent so we can look
    apps.create_namespaced_deployment("default", dep)
    custom.delete_namespaced_custom_object(G, V, "default", VEG, "g",
                                           propagation_policy="Foreground")
    owner = custom.get_namespaced_custom_object(G, V, "default", VEG, "g")
    assert "foregroundDeletion" in owner["metadata"]["finalizers"]
    wait_for(lambda: apps.read_namespaced_deployment("g", "default").metadata.deletion_timestamp,
             timeout=5, what="dependent marked for deletion")
    apps.patch_namespaced_deployment("g", "default", {"metadata": {"finalizers": None}},
                                     _content_type="application/merge-patch+json")
    wait_for(lambda: gone(custom.get_namespaced_custom_object, G, V, "default", VEG, "g"),
             timeout=5, what="owner deleted after its dependents")


def test_namespace_deletion_empties_it(kubeapi, custom):
    core = client.CoreV1Api(kubeapi.api_client())
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t"}})
    custom.create_namespaced_custom_object(G, V, "t", VEG, veg("g", [FINALIZER], ns="t"))
    core.delete_namespace("t")
    assert core.read_namespace("t").status.phase == "Terminating"
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(G, V, "t", VEG, veg("h", ns="t"))
    assert e.value.status == 403
    wait_for(lambda: custom.get_namespaced_custom_object(G, V, "t", VEG, "g")["metadata"]
             .get("deletionTimestamp"), timeout=5, what="content marked for deletion")
    assert core.read_namespace("t").metadata.name == "t"  # held by the VEG's finalizer
    custom.patch_namespaced_custom_object(G, V, "t", VEG, "g", {"metadata": {"finalizers": None}})
    wait_for(lambda: gone(core.read_namespace, "t"), timeout=5, what="namespace removed")
