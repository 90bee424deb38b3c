"""workload/status: a gateway's .status as the seed shows it, its conditions, the Events of its
transitions, and a VPC's status.bfdPort. Every status is also checked against the CRD schema."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import yaml
from kubeapi import schema as crd_schema

from vegd.model.errors import ValidationError
from vegd.model.instances import workload
from vegd.model.objects import Snapshot, VpcEgressGateway
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.source.yamldir import read_manifests
from vegd.workload import status as ws

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
CRD = yaml.safe_load((ROOT / "deploy" / "crds" / "vpc-egress-gateway.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
T0, T1, T2 = "2026-11-26T12:00:00Z", "2026-11-26T12:00:05Z", "2026-11-26T12:01:00Z"


def seed_objects() -> list[dict]:
    return [copy.deepcopy(dict(obj)) for _, obj in read_manifests(SEED)]


def snapshot(objs: list[dict] | None = None) -> Snapshot:
    return snapshot_from_objects(seed_objects() if objs is None else objs)


def gateway(snap: Snapshot, key: str, generation: int = 3) -> VpcEgressGateway:
    gw = snap.gateway(key)
    assert gw is not None
    return dataclasses.replace(gw, generation=generation)


def rolled_out(name: str, replicas: int = 2, generation: int = 1) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": generation, "replicas": replicas,
                       "updatedReplicas": replicas, "readyReplicas": replicas,
                       "availableReplicas": replicas}}


def status_of(snap: Snapshot, key: str, **kwargs) -> dict:
    gw = gateway(snap, key)
    resolved = resolve_gateway(gw, snap)
    kwargs.setdefault("workload", workload(resolved, snap))
    kwargs.setdefault("deployment", rolled_out(gw.name, gw.replicas))
    kwargs.setdefault("nb_written", True)
    kwargs.setdefault("now", T0)
    return ws.gateway_status(gw, **kwargs)


def valid_for_crd(status: dict) -> list:
    veg = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
           "metadata": {"name": "g", "namespace": "default"},
           "spec": {"externalSubnet": "macvlan1", "policies": [{"subnets": ["ovn-default"]}]},
           "status": status}
    processed = crd_schema.process_custom(veg, SCHEMA)
    assert processed["status"] == status, "the CRD would prune or default part of the status"
    return crd_schema.validate(processed, SCHEMA)


def condition(status: dict, kind: str) -> dict:
    (found,) = [c for c in status["conditions"] if c["type"] == kind]
    return found


def pods_of(objs: list[dict], gateway_name: str) -> list[dict]:
    return [o for o in objs if o["kind"] == "Pod"
            and o["metadata"]["labels"].get("ovn.kubernetes.io/vpc-egress-gateway") == gateway_name]


# ---------------------------------------------------------------- the seed's rows


def test_gateway1_completed_as_kubectl_get_veg_wide_shows():
    st = status_of(snapshot(), "default/gateway1")
    assert (st["phase"], st["ready"]) == ("Completed", True)
    assert st["internalIPs"] == ["10.16.0.12", "10.16.0.13"]
    assert st["externalIPs"] == ["172.17.0.11", "172.17.0.12"]
    assert st["workload"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway1",
                              "nodes": ["kube-ovn-worker", "kube-ovn-worker2"]}
    assert st["replicas"] == 2
    assert st["labelSelector"] == \
        "app=vpc-egress-gateway,ovn.kubernetes.io/vpc-egress-gateway=gateway1"
    assert st["bfdSessions"] == []
    assert condition(st, "Ready") == {
        "type": "Ready", "status": "True", "reason": "ReconcileSuccess",
        "message": "2 of 2 instances are ready", "observedGeneration": 3,
        "lastTransitionTime": T0}
    assert condition(st, "Validated") == {
        "type": "Validated", "status": "True", "reason": "Valid",
        "message": "the spec is valid", "observedGeneration": 3, "lastTransitionTime": T0}
    assert valid_for_crd(st) == []


def test_gateway2_rows_in_seed_order_with_bfd_sessions():
    st = status_of(snapshot(), "default/gateway2",
                   bfd={"192.168.0.2": "up", "192.168.0.3": "up"})
    # the seed's row: ["192.168.0.2","192.168.0.3"]  ["172.17.0.13","172.17.0.14"]
    assert st["internalIPs"] == ["192.168.0.2", "192.168.0.3"]
    assert st["externalIPs"] == ["172.17.0.13", "172.17.0.14"]
    assert st["workload"]["nodes"] == ["kube-ovn-worker", "kube-ovn-worker2"]
    assert st["bfdSessions"] == [
        {"instance": "gateway2-fcc6b8b87-wmww6", "node": "kube-ovn-worker",
         "ip": "192.168.0.2", "status": "up"},
        {"instance": "gateway2-fcc6b8b87-8lgvx", "node": "kube-ovn-worker2",
         "ip": "192.168.0.3", "status": "up"}]
    assert (st["phase"], st["ready"]) == ("Completed", True)
    assert valid_for_crd(st) == []


def test_bfd_down_is_reported_but_does_not_gate_ready():
    st = status_of(snapshot(), "default/gateway2", bfd={"192.168.0.2": "down"})
    assert [s["status"] for s in st["bfdSessions"]] == ["down", "unknown"]
    assert st["ready"] is True
    assert condition(st, "Ready")["message"] == (
        "2 of 2 instances are ready; BFD gateway2-fcc6b8b87-wmww6 (192.168.0.2) down, "
        "gateway2-fcc6b8b87-8lgvx (192.168.0.3) unknown")


def test_dual_stack_instances_join_their_addresses():
    objs = seed_objects()
    for o in objs:
        if o["kind"] == "Subnet" and o["metadata"]["name"] == "ovn-default":
            o["spec"].update(cidrBlock="10.16.0.0/16,fd00::/112", gateway="10.16.0.1,fd00::1")
    for i, p in enumerate(pods_of(objs, "gateway1")):
        p["status"]["podIPs"].append({"ip": f"fd00::{12 + i:x}"})
    st = status_of(snapshot(objs), "default/gateway1")
    assert st["internalIPs"] == ["10.16.0.12,fd00::c", "10.16.0.13,fd00::d"]
    assert st["externalIPs"] == ["172.17.0.11", "172.17.0.12"]
    assert valid_for_crd(st) == []


# ---------------------------------------------------------------- phases and reasons


def test_invalid_spec_is_pending_with_a_validated_false_condition():
    snap = snapshot()
    gw = gateway(snap, "default/gateway1")
    err = ValidationError(gw.ref, "spec.externalSubnet", "subnet macvlan9 does not exist")
    st = ws.gateway_status(gw, now=T0, invalid=err, deployment=rolled_out("gateway1"))
    assert (st["phase"], st["ready"]) == ("Pending", False)
    assert condition(st, "Validated") == {
        "type": "Validated", "status": "False", "reason": "InvalidSpec",
        "message": "spec.externalSubnet: subnet macvlan9 does not exist",
        "observedGeneration": 3, "lastTransitionTime": T0}
    ready = condition(st, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"] == "the spec is invalid: spec.externalSubnet: subnet macvlan9 " \
        "does not exist"
    assert st["internalIPs"] == st["externalIPs"] == st["workload"]["nodes"] == []
    assert st["replicas"] == 2  # the old Deployment still runs its pods
    assert valid_for_crd(st) == []


def test_bfd_without_a_vpc_bfd_port_uses_kube_ovns_reason():
    objs = [o for o in seed_objects() if o["kind"] != "Vpc"]
    objs.append({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "vpc1"},
                 "spec": {}})
    snap = snapshot(objs)
    gw = gateway(snap, "default/gateway2")
    with pytest.raises(ValidationError) as err:
        resolve_gateway(gw, snap)
    st = ws.gateway_status(gw, now=T0, invalid=err.value)
    assert condition(st, "Validated")["reason"] == "VpcBfdPortNotEnabled"
    assert "bfdPort" in condition(st, "Validated")["message"]
    assert st["phase"] == "Pending"


def test_unparsable_object_gets_a_status_too():
    raw = {"metadata": {"name": "broken", "namespace": "ns", "generation": 7, "uid": "u"},
           "spec": {"replicas": "two", "prefix": "p-"}}
    gw = ws.unparsed_gateway(raw)
    assert (gw.key, gw.generation, gw.replicas, gw.prefix) == ("ns/broken", 7, 0, "p-")
    st = ws.gateway_status(gw, now=T0, invalid="spec.replicas: must be an integer")
    assert condition(st, "Validated")["message"] == "spec.replicas: must be an integer"
    assert condition(st, "Validated")["observedGeneration"] == 7
    assert st["workload"]["name"] == "p-broken"
    assert ws.unparsed_gateway({}).name == ""


def test_no_deployment_yet_is_pending():
    st = status_of(snapshot(), "default/gateway1", deployment=None, nb_written=False)
    assert (st["phase"], st["ready"]) == ("Pending", False)
    ready = condition(st, "Ready")
    assert (ready["reason"], ready["message"]) == (
        "WorkloadNotCreated", "Deployment default/gateway1 does not exist yet")
    assert st["replicas"] == 0


def test_deployment_write_failure_is_processing():
    st = status_of(snapshot(), "default/gateway1", deployment=None,
                   workload_error="422 Invalid: spec.template.spec.tolerations[0]: bad effect")
    ready = condition(st, "Ready")
    assert (st["phase"], ready["reason"]) == ("Processing", "ReconcileWorkloadFailed")
    assert ready["message"].startswith("Deployment default/gateway1: 422 Invalid")


def test_a_pending_pod_is_processing_with_a_readable_message():
    objs = seed_objects()
    pod = pods_of(objs, "gateway1")[1]
    pod["status"] = {"phase": "Pending"}
    dep = rolled_out("gateway1")
    dep["status"].update(availableReplicas=1, readyReplicas=1)
    st = status_of(snapshot(objs), "default/gateway1", deployment=dep)
    assert (st["phase"], st["ready"]) == ("Processing", False)
    ready = condition(st, "Ready")
    assert ready["reason"] == "Processing"
    assert ready["message"] == (
        "Deployment default/gateway1 is rolling out: 1 of 2 pods available; "
        "1 of 2 instances are ready: pod default/gateway1-b9f8b4448-zd4dl is Pending")
    assert st["internalIPs"] == ["10.16.0.12"] and st["externalIPs"] == ["172.17.0.11"]
    assert st["workload"]["nodes"] == ["kube-ovn-worker"]


def test_missing_network_status_on_a_rolled_out_deployment():
    # Kube-OVN e2e case 11: ready false, Processing, WorkloadNetworkNotReady, no external IPs
    objs = seed_objects()
    for p in pods_of(objs, "gateway1"):
        del p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    st = status_of(snapshot(objs), "default/gateway1")
    ready = condition(st, "Ready")
    assert (st["ready"], st["phase"], ready["reason"]) == (
        False, "Processing", "WorkloadNetworkNotReady")
    assert ready["message"].startswith("0 of 2 instances are ready: pod default/gateway1-")
    assert "has no network-status annotation" in ready["message"]
    assert st["externalIPs"] == []


@pytest.mark.parametrize("change, why", [
    ({"metadata": {"generation": 2}}, "has not yet seen its latest spec"),
    ({"status": {"updatedReplicas": 1}}, "1 of 2 pods updated"),
    ({"status": {"replicas": 3}}, "1 old pod(s) still running"),
    ({"status": {"conditions": [{"type": "Progressing", "status": "False",
                                 "reason": "ProgressDeadlineExceeded",
                                 "message": "ReplicaSet has timed out progressing."}]}},
     "exceeded its progress deadline: ReplicaSet has timed out progressing."),
])
def test_rollout_states(change, why):
    dep = rolled_out("gateway1")
    for part, values in change.items():
        dep[part].update(values)
    assert why in (ws.deployment_rollout(dep) or "")
    st = status_of(snapshot(), "default/gateway1", deployment=dep)
    assert (st["phase"], condition(st, "Ready")["reason"]) == ("Processing", "Processing")
    assert ws.deployment_rollout(rolled_out("gateway1")) is None


def test_nb_failure_and_nb_not_written():
    st = status_of(snapshot(), "default/gateway1", nb_written=False, nb_error="timed out")
    ready = condition(st, "Ready")
    assert (st["phase"], ready["reason"]) == ("Processing", "ReconcileOVNRoutesFailed")
    assert ready["message"] == ("writing the OVN Northbound database failed: timed out; "
                                "2 of 2 instances are ready")
    st = status_of(snapshot(), "default/gateway1", nb_written=False)
    assert (st["phase"], condition(st, "Ready")["reason"]) == ("Processing", "Processing")
    assert "not written yet" in condition(st, "Ready")["message"]


def test_zero_replicas_is_completed():
    objs = [o for o in seed_objects() if not (
        o["kind"] == "Pod" and o["metadata"]["name"].startswith("gateway1"))]
    for o in objs:
        if o["kind"] == "VpcEgressGateway" and o["metadata"]["name"] == "gateway1":
            o["spec"]["replicas"] = 0
    st = status_of(snapshot(objs), "default/gateway1", deployment=rolled_out("gateway1", 0))
    assert (st["phase"], st["ready"], st["replicas"]) == ("Completed", True, 0)
    assert "replicas is 0" in condition(st, "Ready")["message"]


# ---------------------------------------------------------------- times and differences


def test_last_transition_time_is_kept_while_the_status_holds():
    snap = snapshot()
    first = status_of(snap, "default/gateway1", now=T0)
    again = status_of(snap, "default/gateway1", now=T1, previous=first)
    assert condition(again, "Ready")["lastTransitionTime"] == T0
    assert not ws.status_differs(first, again)
    broken = status_of(snap, "default/gateway1", now=T2, previous=again, nb_error="x")
    assert condition(broken, "Ready")["lastTransitionTime"] == T2
    assert condition(broken, "Validated")["lastTransitionTime"] == T0
    assert ws.status_differs(again, broken)


def test_status_differs_ignores_times_and_missing_empties():
    st = status_of(snapshot(), "default/gateway1")
    later = copy.deepcopy(st)
    for c in later["conditions"]:
        c["lastTransitionTime"] = T2
        c["lastUpdateTime"] = T2
    assert not ws.status_differs(st, later)
    sparse = {k: v for k, v in st.items() if k != "bfdSessions"}
    assert not ws.status_differs(sparse, st)
    assert ws.status_differs(None, st)
    assert ws.status_differs({}, st)
    fewer = copy.deepcopy(st)
    fewer["internalIPs"] = ["10.16.0.12"]
    assert ws.status_differs(fewer, st)


# ---------------------------------------------------------------- events


def reasons(events):
    return [(e.type, e.reason) for e in events]


def test_events_follow_a_gateway_from_creation_to_ready_and_nothing_on_repeats():
    snap = snapshot()
    pending = status_of(snap, "default/gateway1", deployment=None, nb_written=False)
    assert reasons(ws.events_for(None, pending)) == [("Normal", "WorkloadNotCreated")]
    rolling = rolled_out("gateway1")
    rolling["status"]["availableReplicas"] = 0
    processing = status_of(snap, "default/gateway1", previous=pending, deployment=rolling)
    assert reasons(ws.events_for(pending, processing)) == [("Normal", "Processing")]
    done = status_of(snap, "default/gateway1", previous=processing)
    events = ws.events_for(processing, done)
    assert reasons(events) == [("Normal", "ReconcileSuccess")]
    assert events[0].message == "2 of 2 instances are ready"
    assert ws.events_for(done, status_of(snap, "default/gateway1", previous=done)) == []


def test_events_for_invalid_spec_once_then_for_the_fix():
    snap = snapshot()
    gw = gateway(snap, "default/gateway1")
    ok = status_of(snap, "default/gateway1")
    err = ValidationError(gw.ref, "spec.externalSubnet", "subnet macvlan9 does not exist")
    bad = ws.gateway_status(gw, now=T1, previous=ok, invalid=err)
    events = ws.events_for(ok, bad)
    assert events == [ws.EventSpec("Warning", "InvalidSpec",
                                   "spec.externalSubnet: subnet macvlan9 does not exist")]
    still = ws.gateway_status(gw, now=T2, previous=bad, invalid=err)
    assert ws.events_for(bad, still) == []
    other = ws.gateway_status(gw, now=T2, previous=bad, invalid=ValidationError(
        gw.ref, "spec.vpc", "VPC x does not exist"))
    assert reasons(ws.events_for(bad, other)) == [("Warning", "InvalidSpec")]
    fixed = status_of(snap, "default/gateway1", now=T2, previous=other)
    assert reasons(ws.events_for(other, fixed)) == [("Normal", "Valid"),
                                                    ("Normal", "ReconcileSuccess")]


def test_failure_events_are_warnings_and_message_changes_alone_are_quiet():
    snap = snapshot()
    ok = status_of(snap, "default/gateway1")
    failed = status_of(snap, "default/gateway1", previous=ok, nb_error="timed out")
    assert reasons(ws.events_for(ok, failed)) == [("Warning", "ReconcileOVNRoutesFailed")]
    failed_again = status_of(snap, "default/gateway1", previous=failed, nb_error="refused")
    assert ws.events_for(failed, failed_again) == []


def test_bfd_session_events_on_transitions_only():
    snap = snapshot()
    unknown = status_of(snap, "default/gateway2", bfd={})
    assert ws.events_for(None, unknown) == [ws.EventSpec("Normal", "ReconcileSuccess",
                                                         condition(unknown, "Ready")["message"])]
    up = status_of(snap, "default/gateway2", previous=unknown,
                   bfd={"192.168.0.2": "up", "192.168.0.3": "up"})
    assert reasons(ws.events_for(unknown, up)) == [("Normal", "BfdSessionUp")] * 2
    down = status_of(snap, "default/gateway2", previous=up,
                     bfd={"192.168.0.2": "up", "192.168.0.3": "down"})
    events = ws.events_for(up, down)
    assert events == [ws.EventSpec(
        "Warning", "BfdSessionDown", "BFD session with instance gateway2-fcc6b8b87-8lgvx "
        "(192.168.0.3) on kube-ovn-worker2 is down: OVN sends it no traffic")]
    assert ws.events_for(down, status_of(snap, "default/gateway2", previous=down,
                                         bfd={"192.168.0.2": "up", "192.168.0.3": "down"})) == []


def test_long_event_messages_are_cut():
    snap = snapshot()
    gw = gateway(snap, "default/gateway1")
    bad = ws.gateway_status(gw, now=T0, invalid="x" * 5000)
    (event,) = ws.events_for(None, bad)
    assert len(event.message) == ws.EVENT_MESSAGE_MAX and event.message.endswith("...")
    huge = ws.gateway_status(gw, now=T0, invalid="x" * 40000)
    assert len(condition(huge, "Validated")["message"]) == ws.CONDITION_MESSAGE_MAX
    assert valid_for_crd(huge) == []


# ---------------------------------------------------------------- VPC status.bfdPort


def vpc_objs(port: dict | None, *nodes: dict) -> list[dict]:
    objs = [o for o in seed_objects() if o["kind"] not in ("Vpc", "Node")]
    objs.append({"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "vpc1"},
                 "spec": {"bfdPort": port} if port is not None else {}})
    return objs + list(nodes)


def node(name: str, chassis: str = "", ready: bool = True, **labels: str) -> dict:
    ann = {"ovn.kubernetes.io/chassis": chassis} if chassis else {}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": ann},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_vpc_bfd_port_status_seed():
    snap = snapshot()
    vpc = snap.vpc("vpc1")
    assert vpc is not None
    assert ws.vpc_bfd_port_status(vpc, snap) == {
        "name": "bfd@vpc1", "ip": "10.255.255.255",
        "nodes": ["kube-ovn-control-plane", "kube-ovn-worker", "kube-ovn-worker2"]}


def test_vpc_bfd_port_status_selector_chassis_and_off():
    nodes = [node("n1", "c1", role="bfd"), node("n2", "", role="bfd"), node("n3", "c3"),
             node("n4", "c4", ready=False, role="bfd")]
    port = {"enabled": True, "ip": "10.255.255.255,fdff::1",
            "nodeSelector": {"matchLabels": {"role": "bfd"}}}
    snap = snapshot(vpc_objs(port, *nodes))
    vpc = snap.vpc("vpc1")
    assert vpc is not None
    # n2 has no chassis, so it is not in the HA chassis group
    assert ws.vpc_bfd_port_status(vpc, snap) == {
        "name": "bfd@vpc1", "ip": "10.255.255.255,fdff::1", "nodes": ["n1", "n4"]}
    auto = snapshot(vpc_objs({"enabled": True, "ip": "10.255.255.255"}, *nodes))
    vpc = auto.vpc("vpc1")
    assert vpc is not None
    assert ws.vpc_bfd_port_status(vpc, auto)["nodes"] == ["n1", "n3"]  # ready ones, by name
    for port in (None, {"enabled": False, "ip": "10.255.255.255"}):
        off = snapshot(vpc_objs(port, *nodes))
        vpc = off.vpc("vpc1")
        assert vpc is not None
        assert ws.vpc_bfd_port_status(vpc, off) == {"name": "", "ip": "", "nodes": []}
