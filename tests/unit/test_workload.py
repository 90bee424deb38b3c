"""workload/deployment: the Deployment vegd renders for a gateway, and when it is updated.

The agent settings in the rendered Deployment are checked by the agent's own parser
(vegd.gateway.settings), so a Deployment vegd renders never crash-loops on its settings.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml

from vegd.gateway import settings as agent_settings
from vegd.model.errors import ValidationError
from vegd.model.objects import Snapshot
from vegd.model.parse import parse_gateway
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.source.yamldir import read_manifests
from vegd.workload import deployment as wd
from vegd.workload.compare import contained, quantity

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
IMAGE = "registry.example/vegd:1.0"
OPTIONS = wd.WorkloadOptions(image=IMAGE)


def seed_objects() -> list[dict]:
    return [copy.deepcopy(dict(obj)) for _, obj in read_manifests(SEED)]


def snapshot(*extra: dict, drop: tuple[str, ...] = ()) -> Snapshot:
    """The seed cluster (+ extra objects); objects named in drop ("Kind/name") left out."""
    objs = [o for o in seed_objects() if f"{o['kind']}/{o['metadata']['name']}" not in drop]
    replaced = {(o["kind"], o["metadata"]["name"]) for o in extra}
    objs = [o for o in objs if (o["kind"], o["metadata"]["name"]) not in replaced]
    return snapshot_from_objects(objs + list(extra))


def veg(name: str = "g", **spec) -> dict:
    body = {"vpc": "ovn-cluster", "externalSubnet": "macvlan1",
            "policies": [{"snat": True, "subnets": ["ovn-default"]}]}
    body.update(spec)
    return {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": body}


def subnet(name: str, cidr: str, gateway: str, vpc: str = "ovn-cluster",
           provider: str | None = None) -> dict:
    spec = {"vpc": vpc, "cidrBlock": cidr, "gateway": gateway, "default": name == "ovn-default"}
    if provider:
        spec["provider"] = provider
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
            "spec": spec}


def pod(name: str, ip: str, labels: dict, ns: str = "default", switch: str = "") -> dict:
    ann = {"ovn.kubernetes.io/logical_switch": switch} if switch else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": ann},
            "spec": {"nodeName": "kube-ovn-worker"},
            "status": {"phase": "Running", "podIPs": [{"ip": ip}]}}


def render(snap: Snapshot, key: str, options: wd.WorkloadOptions = OPTIONS) -> dict:
    gw = snap.gateway(key)
    assert gw is not None
    if not gw.uid:
        gw = dataclasses.replace(gw, uid="0d4c3c1e-uid")
    return wd.build_deployment(resolve_gateway(gw, snap), snap, options)


def render_veg(raw: dict, *extra: dict, options: wd.WorkloadOptions = OPTIONS) -> dict:
    snap = snapshot(raw, *extra)
    return render(snap, f"default/{raw['metadata']['name']}", options)


def pod_spec(dep: dict) -> dict:
    return dep["spec"]["template"]["spec"]


def main_container(dep: dict) -> dict:
    (container,) = pod_spec(dep)["containers"]
    return container


def env(dep: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in main_container(dep)["env"] if "value" in e}


def agent(dep: dict, command: str = "run") -> agent_settings.Settings:
    """What the agent makes of the rendered environment (raises if it would refuse it)."""
    return agent_settings.parse([command], environ=env(dep))


# ---------------------------------------------------------------- the seed's gateways


def test_gateway1_deployment_identity_labels_owner_and_strategy():
    dep = render(snapshot(), "default/gateway1")
    labels = {"app": "vpc-egress-gateway", "ovn.kubernetes.io/vpc-egress-gateway": "gateway1"}
    assert dep["apiVersion"] == "apps/v1" and dep["kind"] == "Deployment"
    meta = dep["metadata"]
    assert (meta["name"], meta["namespace"]) == ("gateway1", "default")
    assert meta["labels"] == {**labels, "app.kubernetes.io/managed-by": "vegd"}
    assert meta["ownerReferences"] == [{
        "apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway", "name": "gateway1",
        "uid": "0d4c3c1e-uid", "controller": True, "blockOwnerDeletion": True}]
    spec = dep["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": labels}
    assert spec["template"]["metadata"]["labels"] == labels
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def test_gateway1_pod_annotations_attach_the_external_network():
    dep = render(snapshot(), "default/gateway1")
    assert dep["spec"]["template"]["metadata"]["annotations"] == {
        "ovn.kubernetes.io/logical_switch": "ovn-default",
        "k8s.v1.cni.cncf.io/networks": "default/eth1",
        "eth1.default.kubernetes.io/logical_switch": "macvlan1",
    }


def test_gateway1_affinity_is_one_instance_per_node_and_no_node_affinity():
    dep = render(snapshot(), "default/gateway1")
    assert pod_spec(dep)["affinity"] == {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": dep["spec"]["selector"]["matchLabels"]},
            "topologyKey": "kubernetes.io/hostname"}]}}
    assert "tolerations" not in pod_spec(dep)


def test_gateway1_agent_settings():
    dep = render(snapshot(), "default/gateway1")
    s = agent(dep)
    assert [(f.version, str(f.internal_gateway), str(f.external_gateway)) for f in s.families] \
        == [(4, "10.16.0.1", "172.17.0.1")]
    assert [str(n) for n in s.snat_sources] == ["10.16.0.0/16"]
    assert s.forward_sources == () and s.bfd_peers == ()
    assert (s.internal_interface, s.external_interface) == ("eth0", "net1")
    assert s.listen == ("", 10669) and str(s.state_dir) == wd.STATE_DIR
    assert main_container(dep)["command"] == ["vegd", "gateway", "run", "--keep-on-exit"]
    assert main_container(dep)["image"] == IMAGE


def test_setup_init_container_shares_the_settings_and_is_the_only_privileged_one():
    dep = render(snapshot(), "default/gateway2")
    (setup,) = pod_spec(dep)["initContainers"]
    main = main_container(dep)
    assert setup["command"] == ["vegd", "gateway", "setup"]
    assert setup["env"] + wd.identity_env() == main["env"] and setup["image"] == main["image"]
    assert setup["env"] is not main["env"]  # no shared structure in the rendered dict
    assert agent(dep, "setup").snat_sources == agent(dep).snat_sources
    assert setup["securityContext"] == {"privileged": True, "runAsUser": 0}
    assert main["securityContext"]["privileged"] is False
    assert "allowPrivilegeEscalation" not in main["securityContext"]  # SYS_ADMIN implies it
    plain = main_container(render(snapshot(), "default/gateway1"))
    assert plain["securityContext"]["allowPrivilegeEscalation"] is False
    assert setup["volumeMounts"] == [{"name": "state", "mountPath": wd.STATE_DIR}]
    assert main["volumeMounts"] == setup["volumeMounts"] + [
        {"name": "observability", "mountPath": wd.OBSERVABILITY_DIR, "readOnly": True}]
    assert pod_spec(dep)["volumes"] == [
        {"name": "state", "emptyDir": {}},
        {"name": "observability", "configMap": {"name": "gateway2-observability",
                                                "optional": True}}]


def test_capabilities_without_and_with_bfd():
    plain = main_container(render(snapshot(), "default/gateway1"))["securityContext"]
    assert plain["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
    bfd = main_container(render(snapshot(), "default/gateway2"))["securityContext"]
    assert bfd["capabilities"]["drop"] == ["ALL"]
    assert set(bfd["capabilities"]["add"]) == {
        "NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE", "SYS_ADMIN", "SETUID", "SETGID", "CHOWN",
        "FOWNER", "DAC_OVERRIDE", "KILL"}


def test_gateway2_bfd_peers_and_timers():
    dep = render(snapshot(), "default/gateway2")
    s = agent(dep)
    assert [str(p) for p in s.bfd_peers] == ["10.255.255.255"]
    assert (s.bfd_min_tx, s.bfd_min_rx, s.bfd_multiplier) == (1000, 1000, 3)
    assert [str(n) for n in s.snat_sources] == ["192.168.0.0/24"]
    assert [(str(f.internal_gateway), str(f.external_gateway)) for f in s.families] == [
        ("192.168.0.1", "172.17.0.1")]
    assert dep["spec"]["template"]["metadata"]["annotations"][
        "ovn.kubernetes.io/logical_switch"] == "subnet1"


def test_bfd_timers_follow_the_spec_to_the_edges_of_frr_ranges():
    raw = next(yaml.safe_load_all((SEED / "gateway2.yaml").read_text()))
    raw["metadata"]["uid"] = "u2"
    raw["spec"]["bfd"] = {"enabled": True, "minTX": 300, "minRX": 200, "multiplier": 5}
    s = agent(render_veg(raw))
    assert (s.bfd_min_tx, s.bfd_min_rx, s.bfd_multiplier) == (300, 200, 5)
    raw["spec"]["bfd"] = {"enabled": True, "minTX": 10, "minRX": 60000, "multiplier": 255}
    s = agent(render_veg(raw))
    assert (s.bfd_min_tx, s.bfd_min_rx, s.bfd_multiplier) == (10, 60000, 255)


def test_probes_http_in_the_default_vpc_exec_in_a_custom_vpc():
    main = main_container(render(snapshot(), "default/gateway1"))
    assert main["ports"] == [{"name": "health", "containerPort": 10669, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    custom = main_container(render(snapshot(), "default/gateway2"))
    command = custom["readinessProbe"]["exec"]["command"]
    assert command[:2] == ["python3", "-c"] and "http://localhost:10669/readyz" in command[2]
    assert "httpGet" not in custom["livenessProbe"]
    compile(command[2], "probe", "exec")  # the one-liner is valid Python


def test_agent_port_option_moves_listen_port_and_probes():
    dep = render(snapshot(), "default/gateway2", wd.WorkloadOptions(image=IMAGE, agent_port=9100))
    assert agent(dep).listen == ("", 9100)
    assert main_container(dep)["ports"][0]["containerPort"] == 9100
    assert "localhost:9100/livez" in main_container(dep)["livenessProbe"]["exec"]["command"][2]


def test_pod_level_settings():
    spec = pod_spec(render(snapshot(), "default/gateway1"))
    assert spec["terminationGracePeriodSeconds"] == 10
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    main = spec["containers"][0]
    assert main["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                 "limits": {"memory": "256Mi"}}
    assert "imagePullPolicy" not in main


# ---------------------------------------------------------------- spec fields


def test_prefix_names_the_deployment_and_image_from_the_spec_wins():
    dep = render_veg(veg("g", prefix="veg-", image="mine:2"))
    assert dep["metadata"]["name"] == "veg-g"
    assert main_container(dep)["image"] == "mine:2"
    assert pod_spec(dep)["initContainers"][0]["image"] == "mine:2"


def test_no_image_anywhere_is_a_validation_error():
    with pytest.raises(ValidationError) as err:
        render_veg(veg("g"), options=wd.WorkloadOptions())
    assert err.value.field == "spec.image" and "gateway_image" in err.value.message


def test_image_pull_policy_option():
    dep = render_veg(veg("g"), options=wd.WorkloadOptions(image=IMAGE,
                                                          image_pull_policy="IfNotPresent"))
    assert main_container(dep)["imagePullPolicy"] == "IfNotPresent"
    assert pod_spec(dep)["initContainers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_static_ips_become_ip_pool_annotations():
    dep = render_veg(veg("g", replicas=2, internalIPs=["10.16.0.101", "10.16.0.102"],
                         externalIPs=["172.17.0.10", "172.17.0.11", "172.17.0.12"]))
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["ovn.kubernetes.io/ip_pool"] == "10.16.0.101;10.16.0.102"
    assert ann["eth1.default.kubernetes.io/ip_pool"] == "172.17.0.10;172.17.0.11;172.17.0.12"


def test_dual_stack_ip_pool_entries_keep_their_pairs():
    extra = [subnet("ovn-default", "10.16.0.0/16,fd00::/112", "10.16.0.1,fd00::1"),
             subnet("macvlan1", "172.17.0.0/16,2001:db8::/64", "172.17.0.1,2001:db8::1",
                    provider="eth1.default")]
    dep = render_veg(veg("g", replicas=1, internalIPs=["10.16.0.101,fd00::11"],
                         externalIPs=["172.17.0.10,2001:db8::10"]), *extra)
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["ovn.kubernetes.io/ip_pool"] == "10.16.0.101,fd00::11"
    assert ann["eth1.default.kubernetes.io/ip_pool"] == "172.17.0.10,2001:db8::10"
    s = agent(dep)
    assert [(f.version, str(f.internal_gateway), str(f.external_gateway)) for f in s.families] \
        == [(4, "10.16.0.1", "172.17.0.1"), (6, "fd00::1", "2001:db8::1")]
    assert [str(n) for n in s.snat_sources] == ["10.16.0.0/16", "fd00::/112"]


def test_a_family_without_an_external_gateway_is_left_to_ovn_alone():
    # Dual-stack internal subnet, IPv4-only external one (Kube-OVN e2e case 9): the agent
    # routes IPv4 only; an IPv6 source would be refused by it, so it is not passed.
    extra = [subnet("ovn-default", "10.16.0.0/16,fd00::/112", "10.16.0.1,fd00::1")]
    s = agent(render_veg(veg("g"), *extra))
    assert s.versions == (4,)
    assert [str(n) for n in s.snat_sources] == ["10.16.0.0/16"]


def test_no_common_family_is_a_validation_error():
    extra = [subnet("macvlan1", "2001:db8::/64", "2001:db8::1", provider="eth1.default")]
    with pytest.raises(ValidationError) as err:
        render_veg(veg("g"), *extra)
    assert err.value.field == "spec.externalSubnet" and "no address family" in err.value.message


def test_external_subnet_must_name_an_existing_attachment():
    with pytest.raises(ValidationError) as err:
        render_veg(veg("g", externalSubnet="join"))
    assert "provider 'ovn'" in err.value.message
    with pytest.raises(ValidationError) as err:
        render(snapshot(drop=("NetworkAttachmentDefinition/eth1",)), "default/gateway1")
    assert "NetworkAttachmentDefinition default/eth1" in err.value.message


def test_node_selector_terms_become_required_node_affinity():
    dep = render_veg(veg("g", nodeSelector=[
        {"matchLabels": {"kubernetes.io/hostname": "kube-ovn-worker", "b": "2"}},
        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane",
                               "operator": "Exists"}],
         "matchFields": [{"key": "metadata.name", "operator": "In",
                          "values": ["kube-ovn-control-plane"]}],
         "matchLabels": {"zone": "a"}},
        {},
    ]))
    assert pod_spec(dep)["affinity"]["nodeAffinity"] == {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [
                {"key": "b", "operator": "In", "values": ["2"]},
                {"key": "kubernetes.io/hostname", "operator": "In",
                 "values": ["kube-ovn-worker"]}]},
            {"matchExpressions": [
                {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"},
                {"key": "zone", "operator": "In", "values": ["a"]}],
             "matchFields": [{"key": "metadata.name", "operator": "In",
                              "values": ["kube-ovn-control-plane"]}]},
        ]}}


def test_tolerations_are_passed_through():
    tolerations = [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                    "effect": "NoSchedule"},
                   {"key": "dedicated", "operator": "Equal", "value": "egress",
                    "effect": "NoExecute", "tolerationSeconds": 30}]
    dep = render_veg(veg("g", tolerations=tolerations))
    assert pod_spec(dep)["tolerations"] == tolerations


def test_forward_only_and_snat_policies():
    extra = [subnet("fwd", "10.20.0.0/24", "10.20.0.1")]
    dep = render_veg(veg("g", policies=[
        {"snat": False, "subnets": ["fwd"], "ipBlocks": ["10.30.0.0/24"]},
        {"snat": True, "ipBlocks": ["10.16.0.0/16", "10.30.0.0/25"]},
    ]), *extra)
    s = agent(dep)
    assert [str(n) for n in s.forward_sources] == ["10.20.0.0/24", "10.30.0.0/24"]
    # 10.30.0.0/25 lies inside a forward-only prefix: forward wins, the agent refuses duplicates
    assert [str(n) for n in s.snat_sources] == ["10.16.0.0/16"]


def test_the_same_prefix_as_snat_and_forward_only_renders_settings_the_agent_accepts():
    s = agent(render_veg(veg("g", policies=[{"snat": True, "ipBlocks": ["10.40.0.0/24"]},
                                            {"snat": False, "ipBlocks": ["10.40.0.0/24"]}])))
    assert [str(n) for n in s.forward_sources] == ["10.40.0.0/24"]
    assert s.snat_sources == ()


# ---------------------------------------------------------------- selectors


SELECTOR = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}},
             "podSelector": {"matchLabels": {"egress": "g"}}}]


def test_selectors_masquerade_the_vpc_pod_subnets_not_the_attachment_subnet():
    extra = [subnet("fwd", "10.20.0.0/24", "10.20.0.1"),
             subnet("other-vpc", "10.99.0.0/24", "10.99.0.1", vpc="vpc1")]
    s = agent(render_veg(veg("g", policies=[{"snat": False, "subnets": ["fwd"]}],
                             selectors=SELECTOR), *extra))
    # ovn-default and join (ovn-cluster pod subnets); fwd is forward-only; macvlan1 is the
    # external network (provider eth1.default) and vpc1's subnets are another VPC's
    assert [str(n) for n in s.snat_sources] == ["10.16.0.0/16", "100.64.0.0/16"]
    assert [str(n) for n in s.forward_sources] == ["10.20.0.0/24"]


def test_selected_pods_coming_and_going_do_not_change_the_deployment():
    raw = veg("g", policies=[], selectors=SELECTOR)
    before = render_veg(raw)
    pods = [pod(f"p{i}", f"10.16.1.{i}", {"egress": "g"}, switch="ovn-default")
            for i in range(1, 6)]
    after = render_veg(raw, *pods)
    relabelled = copy.deepcopy(pods)
    relabelled[0]["metadata"]["labels"] = {"egress": "other"}
    again = render_veg(raw, *relabelled[:3])
    assert before == after == again
    assert not wd.needs_update(after, before)


# ---------------------------------------------------------------- labels and names


def test_long_names_get_kube_ovn_label_values():
    name = "g" * 70
    value = wd.label_value(name)
    assert len(value) == 63 and value.startswith("g" * 54 + "-")
    assert wd.label_value("gateway1") == "gateway1"
    assert wd.label_selector("gateway1") == \
        "app=vpc-egress-gateway,ovn.kubernetes.io/vpc-egress-gateway=gateway1"
    gw = parse_gateway(veg(name))
    assert wd.deployment_name(gw) == name


# ---------------------------------------------------------------- needs_update


def api_server_defaults(dep: dict) -> dict:
    """What a real kube-apiserver returns for a Deployment vegd created: server metadata,
    defaulted fields, canonical quantities, status."""
    live = copy.deepcopy(dep)
    meta = live["metadata"]
    meta.update(uid="4f0c", resourceVersion="4711", generation=1,
                creationTimestamp="2026-11-26T12:00:00Z",
                managedFields=[{"manager": "vegd", "operation": "Update"}])
    meta["annotations"]["deployment.kubernetes.io/revision"] = "1"
    spec = live["spec"]
    spec.update(revisionHistoryLimit=10, progressDeadlineSeconds=600)
    tmpl = spec["template"]
    tmpl["metadata"]["creationTimestamp"] = None
    ps = tmpl["spec"]
    ps.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
    for c in ps["containers"] + ps["initContainers"]:
        c.update(terminationMessagePath="/dev/termination-log",
                 terminationMessagePolicy="File")
        c.setdefault("imagePullPolicy", "IfNotPresent")
        for name in ("startupProbe", "livenessProbe", "readinessProbe"):
            if name in c:
                c[name].setdefault("successThreshold", 1)
                c[name].setdefault("initialDelaySeconds", 0)
                if "httpGet" in c[name]:
                    c[name]["httpGet"].setdefault("scheme", "HTTP")
        for env in c["env"]:
            env.setdefault("valueFrom", None)  # the Python client's serialisation keeps None
        res = c["resources"]
        for part in res.values():
            for key, value in part.items():
                q = quantity(value)
                if key == "cpu" and q is not None and q.denominator != 1:
                    part[key] = f"{int(q * 1000)}m"
                elif key == "memory" and q is not None and q % (1 << 20) == 0:
                    part[key] = f"{int(q / (1 << 20))}Mi"
    live["status"] = {"observedGeneration": 1, "replicas": spec["replicas"]}
    return live


def test_no_update_after_api_server_defaulting():
    options = wd.WorkloadOptions(image=IMAGE, resources={
        "requests": {"cpu": "0.05", "memory": "67108864"}, "limits": {"memory": "256Mi"}})
    for key in ("default/gateway1", "default/gateway2"):
        desired = render(snapshot(), key, options)
        live = api_server_defaults(desired)
        assert main_container(live)["resources"]["requests"] == {"cpu": "50m",
                                                                 "memory": "64Mi"}
        assert wd.update_reason(live, desired) is None, key
        assert not wd.needs_update(live, desired)


def test_others_additions_do_not_cause_an_update():
    desired = render(snapshot(), "default/gateway1")
    live = api_server_defaults(desired)
    live["metadata"]["labels"]["team"] = "net"
    live["metadata"]["annotations"]["note"] = "x"
    live["spec"]["template"]["metadata"]["annotations"][
        "kubectl.kubernetes.io/restartedAt"] = "2026-11-26T12:00:00Z"
    assert not wd.needs_update(live, desired)


def _edit(path: str, value):
    def apply(live: dict) -> None:
        parts = path.split(".")
        node = live
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is KeyError:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value
    return apply


DRIFT = {
    "replicas scaled by hand": _edit("spec.replicas", 5),
    "strategy changed": _edit("spec.strategy.rollingUpdate.maxSurge", 1),
    "image changed": _edit("spec.template.spec.containers.0.image", "other:1"),
    "env edited": _edit("spec.template.spec.containers.0.env.4.value", "10.0.0.0/8"),
    "env removed": _edit("spec.template.spec.containers.0.env", []),
    "capability added": _edit("spec.template.spec.containers.0.securityContext.capabilities.add",
                              ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]),
    "affinity removed": _edit("spec.template.spec.affinity", KeyError),
    "logical switch changed": lambda live: live["spec"]["template"]["metadata"][
        "annotations"].update({"ovn.kubernetes.io/logical_switch": "x"}),
    "owner reference removed": _edit("metadata.ownerReferences", []),
    "label changed": _edit("metadata.labels.app", "other"),
    "hash missing": _edit("metadata.annotations", {}),
    "cpu request changed": _edit("spec.template.spec.containers.0.resources.requests.cpu",
                                 "100m"),
}


@pytest.mark.parametrize("name", sorted(DRIFT))
def test_drift_in_what_vegd_sets_causes_an_update(name):
    desired = render(snapshot(), "default/gateway1")
    live = api_server_defaults(desired)
    DRIFT[name](live)
    assert wd.needs_update(live, desired), name


def test_a_stale_ip_pool_annotation_is_an_update_even_with_the_same_hash():
    desired = render(snapshot(), "default/gateway1")
    live = api_server_defaults(desired)
    live["spec"]["template"]["metadata"]["annotations"]["ovn.kubernetes.io/ip_pool"] = "10.16.0.9"
    assert wd.update_reason(live, desired) == \
        ".spec.template.metadata.annotations[ovn.kubernetes.io/ip_pool]"


def test_spec_changes_change_the_hash_but_replicas_do_not():
    base = render_veg(veg("g", replicas=1))
    scaled = render_veg(veg("g", replicas=3))
    pinned = render_veg(veg("g", replicas=1, internalIPs=["10.16.0.101"]))
    h = wd.SPEC_HASH
    assert base["metadata"]["annotations"][h] == scaled["metadata"]["annotations"][h]
    assert base["metadata"]["annotations"][h] != pinned["metadata"]["annotations"][h]
    live = api_server_defaults(base)
    assert wd.update_reason(live, scaled) == ".spec.replicas"
    assert wd.update_reason(live, pinned) == f".metadata.annotations[{h}]"


def test_merge_for_update_keeps_live_metadata_and_others_template_annotations():
    pinned = render_veg(veg("g", internalIPs=["10.16.0.101"]))
    live = api_server_defaults(pinned)
    live["metadata"]["labels"]["team"] = "net"
    restarted = {"kubectl.kubernetes.io/restartedAt": "2026-11-26T12:00:00Z"}
    live["spec"]["template"]["metadata"]["annotations"].update(restarted)
    desired = render_veg(veg("g"))  # internalIPs dropped from the spec
    body = wd.merge_for_update(live, desired)
    assert body["metadata"]["resourceVersion"] == "4711"
    assert body["metadata"]["uid"] == "4f0c"
    assert body["metadata"]["labels"]["team"] == "net"
    assert body["metadata"]["annotations"][wd.SPEC_HASH] == \
        desired["metadata"]["annotations"][wd.SPEC_HASH]
    assert body["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    ann = body["spec"]["template"]["metadata"]["annotations"]
    assert "ovn.kubernetes.io/ip_pool" not in ann
    assert ann["kubectl.kubernetes.io/restartedAt"] == restarted[
        "kubectl.kubernetes.io/restartedAt"]
    assert "status" not in body
    assert body["spec"]["replicas"] == desired["spec"]["replicas"]
    assert not wd.needs_update(api_server_defaults(body), desired)


# ---------------------------------------------------------------- compare


@pytest.mark.parametrize("text, value", [
    ("100m", Fraction(1, 10)), ("0.1", Fraction(1, 10)), ("1", Fraction(1)), (2, Fraction(2)),
    ("64Mi", Fraction(64 << 20)), ("1Gi", Fraction(1 << 30)), ("1G", Fraction(10**9)),
    ("1e3", Fraction(1000)), ("1.5k", Fraction(1500)), ("500u", Fraction(1, 2000)),
    ("abc", None), ("1Zi", None), (True, None), (None, None),
])
def test_quantity(text, value):
    assert quantity(text) == value


def test_contained_is_one_sided_and_strict_on_lists_and_types():
    assert contained({"a": 1}, {"a": 1, "b": 2}) is None
    assert contained({"a": 1, "b": 2}, {"a": 1}) == ".b"
    assert contained({"a": []}, {}) is None  # the server may drop an empty field
    assert contained({"l": [1, 2]}, {"l": [1, 2, 3]}) == ".l"
    assert contained({"l": [{"x": 1}]}, {"l": [{"x": 1, "y": 2}]}) is None
    assert contained({"b": True}, {"b": 1}) == ".b"
    assert contained({"resources": {"limits": {"cpu": "1"}}},
                     {"resources": {"limits": {"cpu": "1000m"}}}) is None
    assert contained({"x": {"limits": {"cpu": "1"}}}, {"x": {"limits": {"cpu": "1000m"}}}) \
        == ".x.limits.cpu"
    # mappings other than dicts are mappings too; equal strings are equal anywhere
    assert contained(MappingProxyType({"a": "x"}), {"a": "x", "b": "y"}) is None
    assert contained({"a": MappingProxyType({"b": "x"})}, {"a": {"b": "y"}}) == ".a.b"
    assert contained({"l": ["x", "y"]}, {"l": ["x", "z"]}) == ".l[1]"


def test_rendered_deployment_is_json():
    dep = render(snapshot(), "default/gateway2")
    assert json.loads(json.dumps(dep)) == dep


def test_docs_example_is_what_build_deployment_renders():
    """docs/workload.md shows gateway1's Deployment; keep it true."""
    text = (ROOT / "docs" / "workload.md").read_text()
    start = text.index("```yaml\n# gateway1\n") + len("```yaml\n")
    shown = yaml.safe_load(text[start:text.index("```", start)])
    snap = snapshot()
    gw = dataclasses.replace(snap.gateway("default/gateway1"),
                             uid="6f1b2a4c-8d0e-4b7a-9c3d-2e5f6a7b8c9d")
    options = wd.WorkloadOptions(image="registry.example/vegd:1.0")
    assert wd.build_deployment(resolve_gateway(gw, snap), snap, options) == shown
