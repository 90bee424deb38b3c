"""workload/ through the in-process API server and the official client: the rendered Deployment
is accepted, comes back defaulted and still needs no update; updates built with
merge_for_update converge; the owner reference lets the garbage collector remove it; the status
is accepted by the CRD and feeds the scale subresource."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from ovnstack import wait_for

from vegd.model.instances import workload
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.source.yamldir import read_manifests
from vegd.workload import deployment as wd
from vegd.workload import status as ws

pytest_plugins = ["kubeapi.fixture"]

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
G, V, VEG = "kubeovn.io", "v1", "vpc-egress-gateways"
OPTIONS = wd.WorkloadOptions(image="registry.example/vegd:1.0")
NOW = "2026-11-26T12:00:00Z"


def seed_objects() -> list[dict]:
    return [copy.deepcopy(dict(obj)) for _, obj in read_manifests(SEED)]


def seed_veg(name: str) -> dict:
    (veg,) = [o for o in seed_objects()
              if o["kind"] == "VpcEgressGateway" and o["metadata"]["name"] == name]
    return veg


@pytest.fixture
def apps(kubeapi):
    return client.AppsV1Api(kubeapi.api_client())


@pytest.fixture
def custom(kubeapi):
    return client.CustomObjectsApi(kubeapi.api_client())


def create_veg(custom, veg: dict) -> dict:
    return custom.create_namespaced_custom_object(G, V, "default", VEG, veg)


def desired_for(stored_veg: dict, **spec) -> tuple[dict, object, object]:
    """(Deployment, resolved gateway, snapshot) for the stored VEG with spec changes."""
    veg = copy.deepcopy(stored_veg)
    veg["spec"].update(spec)
    objs = [o for o in seed_objects() if not (
        o["kind"] == "VpcEgressGateway" and o["metadata"]["name"] == veg["metadata"]["name"])]
    snap = snapshot_from_objects([*objs, veg])
    gw = snap.gateway(f"default/{veg['metadata']['name']}")
    resolved = resolve_gateway(gw, snap)
    return wd.build_deployment(resolved, snap, OPTIONS), resolved, snap


def read_raw(apps, name: str) -> dict:
    resp = apps.read_namespaced_deployment(name, "default", _preload_content=False)
    return json.loads(resp.data)


def read_typed(apps, name: str) -> dict:
    """As a caller that deserialises into V1Deployment and back would see it."""
    model = apps.read_namespaced_deployment(name, "default")
    return apps.api_client.sanitize_for_serialization(model)


@pytest.mark.parametrize("name", ["gateway1", "gateway2"])
def test_created_deployment_reads_back_without_needing_an_update(apps, custom, name):
    stored = create_veg(custom, seed_veg(name))
    desired, _, _ = desired_for(stored)
    assert desired["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
    apps.create_namespaced_deployment("default", desired)
    raw = read_raw(apps, name)
    assert raw["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"]  # defaulted
    assert wd.update_reason(raw, desired) is None
    assert wd.update_reason(read_typed(apps, name), desired) is None


def test_scale_and_spec_updates_converge_and_keep_others_annotations(apps, custom):
    stored = create_veg(custom, seed_veg("gateway1"))
    desired, _, _ = desired_for(stored)
    apps.create_namespaced_deployment("default", desired)
    live = read_raw(apps, "gateway1")
    restarted = {"kubectl.kubernetes.io/restartedAt": "2026-11-26T12:00:00Z"}
    apps.patch_namespaced_deployment("gateway1", "default", {"spec": {"template": {
        "metadata": {"annotations": restarted}}}})
    live = read_raw(apps, "gateway1")
    assert not wd.needs_update(live, desired)
    template = live["spec"]["template"]

    scaled, _, _ = desired_for(stored, replicas=3)
    assert wd.update_reason(live, scaled) == ".spec.replicas"
    apps.replace_namespaced_deployment("gateway1", "default", wd.merge_for_update(live, scaled))
    live = read_raw(apps, "gateway1")
    assert live["spec"]["replicas"] == 3 and not wd.needs_update(live, scaled)
    assert live["spec"]["template"] == template  # scaling does not roll the pods

    pinned, _, _ = desired_for(stored, replicas=3,
                               internalIPs=["10.16.0.101", "10.16.0.102", "10.16.0.103"])
    assert wd.needs_update(live, pinned)
    apps.replace_namespaced_deployment("gateway1", "default", wd.merge_for_update(live, pinned))
    live = read_raw(apps, "gateway1")
    assert not wd.needs_update(live, pinned)
    ann = live["spec"]["template"]["metadata"]["annotations"]
    assert ann["ovn.kubernetes.io/ip_pool"] == "10.16.0.101;10.16.0.102;10.16.0.103"
    assert ann["kubectl.kubernetes.io/restartedAt"] == restarted[
        "kubectl.kubernetes.io/restartedAt"]

    apps.replace_namespaced_deployment("gateway1", "default", wd.merge_for_update(live, scaled))
    live = read_raw(apps, "gateway1")
    assert "ovn.kubernetes.io/ip_pool" not in live["spec"]["template"]["metadata"]["annotations"]
    assert not wd.needs_update(live, scaled)


def test_update_from_a_stale_read_is_a_conflict(apps, custom):
    stored = create_veg(custom, seed_veg("gateway1"))
    desired, _, _ = desired_for(stored)
    apps.create_namespaced_deployment("default", desired)
    stale = read_raw(apps, "gateway1")
    apps.patch_namespaced_deployment("gateway1", "default", {"metadata": {"labels": {"x": "y"}}})
    scaled, _, _ = desired_for(stored, replicas=3)
    with pytest.raises(ApiException) as err:
        apps.replace_namespaced_deployment("gateway1", "default",
                                           wd.merge_for_update(stale, scaled))
    assert err.value.status == 409


def test_owner_reference_lets_the_garbage_collector_remove_the_deployment(apps, custom):
    stored = create_veg(custom, seed_veg("gateway1"))
    desired, _, _ = desired_for(stored)
    apps.create_namespaced_deployment("default", desired)
    custom.delete_namespaced_custom_object(G, V, "default", VEG, "gateway1")

    def gone() -> bool:
        try:
            apps.read_namespaced_deployment("gateway1", "default")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(gone, timeout=10, what="the Deployment to be garbage-collected")


def test_status_is_accepted_by_the_crd_and_feeds_the_scale_subresource(apps, custom):
    stored = create_veg(custom, seed_veg("gateway1"))
    desired, resolved, snap = desired_for(stored)
    apps.create_namespaced_deployment("default", desired)
    gw = dataclasses.replace(resolved.gateway,
                             generation=int(stored["metadata"]["generation"]))
    dep = read_raw(apps, "gateway1")
    dep["status"] = {"observedGeneration": dep["metadata"]["generation"], "replicas": 2,
                     "updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2}
    st = ws.gateway_status(gw, now=NOW, previous=stored.get("status"),
                           workload=workload(resolved, snap), deployment=dep, nb_written=True)
    assert ws.events_for(stored.get("status"), st)[0].reason == "ReconcileSuccess"
    out = custom.patch_namespaced_custom_object_status(G, V, "default", VEG, "gateway1",
                                                       {"status": st})
    assert not ws.status_differs(out["status"], st)
    assert out["status"] == st  # nothing pruned or defaulted away
    scale = custom.get_namespaced_custom_object_scale(G, V, "default", VEG, "gateway1")
    assert scale["status"] == {"replicas": 2, "selector": wd.label_selector("gateway1")}

    # A later, emptier status (BFD off, no instances) replaces lists through a merge patch.
    empty = ws.gateway_status(gw, now=NOW, previous=out["status"], deployment=None)
    out = custom.patch_namespaced_custom_object_status(G, V, "default", VEG, "gateway1",
                                                       {"status": empty})
    assert out["status"]["internalIPs"] == [] and out["status"]["workload"]["nodes"] == []
    assert out["status"]["phase"] == "Pending" and out["status"]["ready"] is False
    assert not ws.status_differs(out["status"], empty)

