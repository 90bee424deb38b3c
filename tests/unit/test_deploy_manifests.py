"""deploy/: the VpcEgressGateway CRD, RBAC and the vegd Deployment are well-formed and say what
they must.

The CRD's openAPIV3Schema is checked with jsonschema against the seed document's examples (and
any VpcEgressGateway under examples/) and against broken ones. Its CEL rules
(x-kubernetes-validations) are the CRD's own, evaluated with cel-python the way the API server
binds them (tests/kubeapi/cel.py); the test API server runs the same code.
"""

from __future__ import annotations

import configparser
import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from kubeapi import cel
from kubeapi import schema as crd_schema

from vegd.model import limits

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CRD_FILE = DEPLOY / "crds" / "vpc-egress-gateway.yaml"

# From the seed document (Kube-OVN's "VPC Egress Gateway" page), verbatim.
SEED_EXAMPLES = """
apiVersion: kubeovn.io/v1
kind: VpcEgressGateway
metadata:
  name: gateway1
  namespace: default
spec:
  vpc: ovn-cluster
  replicas: 1
  externalSubnet: macvlan1
  policies:
    - snat: true
      subnets:
        - ovn-default
---
apiVersion: kubeovn.io/v1
kind: VpcEgressGateway
metadata:
  name: gateway1
  namespace: default
spec:
  vpc: ovn-cluster
  replicas: 2
  externalSubnet: macvlan1
  policies:
    - snat: true
      subnets:
        - ovn-default
  externalIPs:
    - 172.17.0.10
    - 172.17.0.11
  nodeSelector:
    - matchLabels:
        kubernetes.io/hostname: kube-ovn-worker
---
apiVersion: kubeovn.io/v1
kind: VpcEgressGateway
metadata:
  name: gateway2
  namespace: default
spec:
  vpc: vpc1
  replicas: 2
  internalSubnet: subnet1
  externalSubnet: macvlan
  bfd:
    enabled: true
  policies:
    - snat: true
      ipBlocks:
        - 192.168.0.0/24
"""

# `kubectl get veg` and `kubectl get veg -o wide` as the seed document shows them.
SEED_GET = """\
NAME       VPC           REPLICAS   BFD ENABLED   EXTERNAL SUBNET   PHASE       READY   AGE
gateway1   ovn-cluster   1          false         macvlan1          Completed   true    13s
"""
SEED_GET_WIDE = """\
NAME       VPC           REPLICAS   BFD ENABLED   EXTERNAL SUBNET   PHASE       READY   INTERNAL IPS     EXTERNAL IPS      WORKING NODES         AGE
gateway1   ovn-cluster   1          false         macvlan1          Completed   true    ["10.16.0.12"]   ["172.17.0.11"]   ["kube-ovn-worker"]   82s
"""  # noqa: E501
SEED_GET_WIDE_BFD = """\
NAME       VPC    REPLICAS   BFD ENABLED   EXTERNAL SUBNET   PHASE       READY   INTERNAL IPS                    EXTERNAL IPS                    WORKING NODES                            AGE
gateway2   vpc1   2          true          macvlan           Completed   true    ["192.168.0.2","192.168.0.3"]   ["172.17.0.13","172.17.0.14"]   ["kube-ovn-worker","kube-ovn-worker2"]   58s
"""  # noqa: E501


def load_all(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture(scope="module")
def crd() -> dict:
    return load_all(CRD_FILE)[0]


@pytest.fixture(scope="module")
def version(crd) -> dict:
    return crd["spec"]["versions"][0]


@pytest.fixture(scope="module")
def schema(version) -> dict:
    return version["schema"]["openAPIV3Schema"]


def admit(obj: dict, schema: dict, old: dict | None = None) -> list[tuple[str, str]]:
    """What the API server would say: prune + default, OpenAPI validation, then CEL."""
    body = {k: v for k, v in copy.deepcopy(obj).items() if k != "metadata"}
    body = crd_schema.process_custom(body, schema)
    body["metadata"] = obj.get("metadata", {})
    old_body = None
    if old is not None:
        old_body = crd_schema.process_custom(
            {k: v for k, v in copy.deepcopy(old).items() if k != "metadata"}, schema)
        old_body["metadata"] = old.get("metadata", {})
    return crd_schema.validate(body, schema) + cel.validate(body, schema, old_body)


def seed_vegs() -> list[dict]:
    return [d for d in yaml.safe_load_all(SEED_EXAMPLES) if d]


def example_vegs() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((ROOT / "examples").rglob("*.y*ml")):
        for doc in load_all(path):
            if isinstance(doc, dict) and doc.get("kind") == "VpcEgressGateway":
                out.append((str(path.relative_to(ROOT)), doc))
    return out


# ---------------------------------------------------------------- every manifest


def test_every_manifest_parses_and_names_itself():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert {f.relative_to(DEPLOY).as_posix() for f in files} >= {
        "crds/vpc-egress-gateway.yaml", "rbac.yaml", "vegd.yaml"}
    for f in files:
        for doc in load_all(f):
            assert doc.get("apiVersion") and doc.get("kind"), f
            assert doc["metadata"].get("name"), f


# ---------------------------------------------------------------- the CRD


def test_crd_identity_and_subresources(crd, version):
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == "vpc-egress-gateways.kubeovn.io"
    spec = crd["spec"]
    assert spec["group"] == "kubeovn.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": "VpcEgressGateway", "listKind": "VpcEgressGatewayList",
                             "plural": "vpc-egress-gateways", "singular": "vpc-egress-gateway",
                             "shortNames": ["vpc-egress-gw", "veg"]}
    assert len(spec["versions"]) == 1
    assert version["name"] == "v1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}, "scale": {
        "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.labelSelector"}}


def _walk(node: dict, path: str = ""):
    yield path, node
    for k, sub in (node.get("properties") or {}).items():
        yield from _walk(sub, f"{path}.{k}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural_and_its_defaults_are_valid(schema):
    jsonschema.Draft7Validator.check_schema(crd_schema._to_jsonschema(schema))
    for path, node in _walk(schema):
        assert "type" in node or node.get("x-kubernetes-int-or-string") \
            or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        if "default" in node:
            errors = list(jsonschema.Draft7Validator(crd_schema._to_jsonschema(node))
                          .iter_errors(node["default"]))
            assert not errors, f"{path}: default {node['default']!r} is invalid"


def test_spec_fields_defaults_and_ranges(schema):
    props = schema["properties"]["spec"]["properties"]
    assert set(props) == {"vpc", "replicas", "prefix", "image", "internalSubnet",
                          "externalSubnet", "internalIPs", "externalIPs", "bfd", "bfdMode",
                          "policies", "selectors", "nodeSelector", "trafficPolicy",
                          "tolerations", "resources", "bandwidth", "podAntiAffinity",
                          "internalIPPool", "externalIPPool", "observability"}
    assert props["podAntiAffinity"]["enum"] == ["Required", "Preferred"]
    assert props["podAntiAffinity"]["default"] == "Required"
    for direction in ("ingress", "egress"):
        rate = props["bandwidth"]["properties"][direction]
        assert rate["pattern"] == r"^([0-9]+|([0-9]+(\.[0-9]+)?|\.[0-9]+)(M|Mi|G|Gi))$"
        assert rate["x-kubernetes-int-or-string"] is True
    log = props["observability"]["properties"]["conntrack"]["properties"]["log"]["properties"]
    rate = log["rateLimit"]["properties"]
    assert (rate["recordsPerSecond"]["minimum"], rate["recordsPerSecond"]["maximum"],
            rate["recordsPerSecond"]["default"]) == (1, 100000, 100)
    assert (rate["burst"]["minimum"], rate["burst"]["maximum"], rate["burst"]["default"]) == \
        (1, 1000000, 1000)
    assert log["events"]["maxItems"] == 2 and log["events"]["items"]["enum"] == ["start", "end"]
    for kind in ("include", "exclude"):
        assert log["filters"]["properties"][kind]["maxItems"] == 64
    assert schema["properties"]["spec"]["required"] == ["externalSubnet"]
    assert props["replicas"]["default"] == 1
    assert (props["replicas"]["minimum"], props["replicas"]["maximum"]) == limits.REPLICAS_RANGE
    assert props["trafficPolicy"]["enum"] == ["Local", "Cluster"]
    assert props["trafficPolicy"]["default"] == "Cluster"
    assert props["bfdMode"]["enum"] == ["route", "policy"]
    assert props["bfdMode"]["default"] == "route"
    bfd = props["bfd"]["properties"]
    assert {k: bfd[k].get("default") for k in bfd} == {"enabled": False, "minRX": 1000,
                                                       "minTX": 1000, "multiplier": 3}
    for k in ("minRX", "minTX", "multiplier"):
        assert (bfd[k]["minimum"], bfd[k]["maximum"]) == limits.CRD_BFD_RANGE
    # vegd refuses what FRR's bfdd cannot run: a narrower range inside the CRD's
    for lo, hi in (limits.BFD_INTERVAL_RANGE, limits.BFD_MULTIPLIER_RANGE):
        assert limits.CRD_BFD_RANGE[0] <= lo <= hi <= limits.CRD_BFD_RANGE[1]
    assert props["prefix"]["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "This field is immutable."}]
    for ips in ("internalIPs", "externalIPs"):
        assert props[ips]["x-kubernetes-list-type"] == "set"


def test_status_schema(schema):
    status = schema["properties"]["status"]
    assert set(status["properties"]) == {"replicas", "labelSelector", "ready", "phase",
                                         "internalIPs", "externalIPs", "conditions",
                                         "workload", "bfdSessions"}
    assert set(status["required"]) == {"conditions", "phase"}
    assert status["properties"]["phase"]["enum"] == ["Pending", "Processing", "Completed"]
    assert status["properties"]["phase"]["default"] == "Pending"
    assert set(status["properties"]["workload"]["properties"]) == {"apiVersion", "kind", "name",
                                                                   "nodes"}
    sess = status["properties"]["bfdSessions"]["items"]
    assert set(sess["properties"]) == {"instance", "node", "ip", "status"}


@pytest.mark.parametrize("veg", seed_vegs(), ids=lambda v: f"{v['metadata']['name']}")
def test_seed_examples_are_valid(veg, schema):
    assert admit(veg, schema) == []


def test_examples_directory_vegs_are_valid(schema):
    for where, veg in example_vegs():  # none yet is fine; every one there must pass
        assert admit(veg, schema) == [], where


def test_defaults_fill_in_a_minimal_veg(schema):
    out = crd_schema.process_custom({"spec": copy.deepcopy(seed_vegs()[0]["spec"])}, schema)
    spec = out["spec"]
    assert spec["bfd"] == {"enabled": False, "minRX": 1000, "minTX": 1000, "multiplier": 3}
    assert spec["trafficPolicy"] == "Cluster" and spec["bfdMode"] == "route"
    assert spec["policies"][0]["snat"] is True
    status = crd_schema.process_custom({"status": {"conditions": []}}, schema)["status"]
    assert status == {"conditions": [], "ready": False, "phase": "Pending"}


BAD_SPECS = {
    "replicas as string": {"replicas": "two"},
    "replicas 11": {"replicas": 11},
    "replicas negative": {"replicas": -1},
    "trafficPolicy Foo": {"trafficPolicy": "Foo"},
    "bfd.minRX 0": {"bfd": {"enabled": True, "minRX": 0}},
    "bfd.multiplier too big": {"bfd": {"multiplier": 3600001}},
    "bfd.enabled as string": {"bfd": {"enabled": "yes"}},
    "bfdMode bogus": {"bfdMode": "ecmp"},
    "policies not a list": {"policies": {"snat": True}},
    "snat as string": {"policies": [{"snat": "true", "subnets": ["s"]}]},
    "prefix upper case": {"prefix": "Veg-"},
    "externalIPs not strings": {"externalIPs": [1, 2]},
    "nodeSelector operator": {"nodeSelector": [{"matchExpressions": [
        {"key": "k", "operator": "Maybe"}]}]},
    "externalSubnet empty": {"externalSubnet": ""},
}


@pytest.mark.parametrize("name", sorted(BAD_SPECS))
def test_schema_rejects_bad_vegs(name, schema):
    veg = seed_vegs()[0]
    veg["spec"].update(BAD_SPECS[name])
    assert crd_schema.validate(crd_schema.process_custom(veg, schema), schema), name


def test_schema_requires_external_subnet(schema):
    veg = seed_vegs()[0]
    del veg["spec"]["externalSubnet"]
    errors = crd_schema.validate(crd_schema.process_custom(veg, schema), schema)
    assert any("externalSubnet" in m for _, m in errors)


def test_status_schema_rejects_bad_status(schema):
    veg = seed_vegs()[0]
    veg["status"] = {"phase": "Done", "conditions": []}
    assert crd_schema.validate(crd_schema.process_custom(veg, schema), schema)
    veg["status"] = {"phase": "Completed"}  # conditions required
    assert crd_schema.validate(crd_schema.process_custom(veg, schema), schema)
    veg["status"] = {"phase": "Completed", "conditions": [], "bfdSessions": [
        {"instance": "gateway2-fcc6b8b87-8lgvx", "ip": "192.168.0.3", "status": "up"}]}
    assert crd_schema.validate(crd_schema.process_custom(veg, schema), schema) == []


# ---------------------------------------------------------------- CEL rules (the CRD's own)

MSG_INTERNAL_IPS = "Size of Internal IPs MUST be equal to or greater than Replicas"
MSG_EXTERNAL_IPS = "Size of External IPs MUST be equal to or greater than Replicas"
MSG_POLICY_OR_SELECTOR = "Each VPC Egress Gateway MUST have at least one policy or selector"
MSG_POLICY_SOURCES = "Each policy MUST have at least one ipBlock or subnet"
MSG_NS_SELECTOR = "Each namespace selector MUST have at least one matchLabels or matchExpressions"
MSG_POD_SELECTOR = "Each pod selector MUST have at least one matchLabels or matchExpressions"
MSG_IMMUTABLE = "This field is immutable."
MSG_INTERNAL_POOL = "internalIPs and internalIPPool are mutually exclusive"
MSG_EXTERNAL_POOL = "externalIPs and externalIPPool are mutually exclusive"
MSG_BANDWIDTH = "bandwidth must be between 0 and 9223372036854 Mbps"
MSG_PORT_RANGE = "start must be less than or equal to end"


def _cel_rules(schema) -> list[dict]:
    out = []
    for _, node in _walk(schema):
        out += node.get("x-kubernetes-validations") or []
    return out


def test_every_cel_rule_compiles_and_has_a_tested_message(schema):
    cel.compile_rules(schema)
    messages = {r["message"] for r in _cel_rules(schema)}
    assert messages == {MSG_INTERNAL_IPS, MSG_EXTERNAL_IPS, MSG_POLICY_OR_SELECTOR,
                        MSG_POLICY_SOURCES, MSG_NS_SELECTOR, MSG_POD_SELECTOR, MSG_IMMUTABLE,
                        MSG_INTERNAL_POOL, MSG_EXTERNAL_POOL, MSG_BANDWIDTH, MSG_PORT_RANGE}
    assert len(_cel_rules(schema)) == 19  # as many as Kube-OVN master's CRD has


CEL_CASES = {
    "internal IPs fewer than replicas": (
        {"replicas": 2, "internalIPs": ["10.16.0.101"]}, "spec.internalIPs", MSG_INTERNAL_IPS),
    "external IPs fewer than replicas": (
        {"replicas": 3, "externalIPs": ["172.17.0.10", "172.17.0.11"]}, "spec.externalIPs",
        MSG_EXTERNAL_IPS),
    "neither policy nor selector": ({"policies": []}, "spec", MSG_POLICY_OR_SELECTOR),
    "policy without sources": ({"policies": [{"snat": True}]}, "spec.policies[0]",
                               MSG_POLICY_SOURCES),
    "empty namespace selector": (
        {"policies": [], "selectors": [{"namespaceSelector": {}}]},
        "spec.selectors[0].namespaceSelector", MSG_NS_SELECTOR),
    "empty pod selector": (
        {"policies": [], "selectors": [{"podSelector": {"matchLabels": {}}}]},
        "spec.selectors[0].podSelector", MSG_POD_SELECTOR),
    "internal IPs and pool": (
        {"internalIPs": ["10.16.0.101", "10.16.0.102"], "internalIPPool": "p"},
        "spec.internalIPPool", MSG_INTERNAL_POOL),
    "external IPs and pool": (
        {"externalIPs": ["172.17.0.101", "172.17.0.102"], "externalIPPool": "p"},
        "spec.externalIPPool", MSG_EXTERNAL_POOL),
}


@pytest.mark.parametrize("name", sorted(CEL_CASES))
def test_cel_rules_reject(name, schema):
    spec, field, message = CEL_CASES[name]
    veg = seed_vegs()[0]
    veg["spec"].update(spec)
    assert (field, f'Invalid value: "object": {message}') in admit(veg, schema)


def test_cel_bandwidth_and_port_range_rules(schema):
    veg = seed_vegs()[0]
    veg["spec"]["bandwidth"] = {"ingress": 9223372036855, "egress": "1Gi"}
    assert [(f, m.endswith(MSG_BANDWIDTH)) for f, m in admit(veg, schema)] == [
        ("spec.bandwidth.ingress", True)]
    veg["spec"]["bandwidth"] = {"ingress": 9223372036854, "egress": "100Mi"}
    veg["spec"]["observability"] = {"conntrack": {"log": {"filters": {"exclude": [
        {"translated": {"destinationPorts": [{"start": 80, "end": 80}]}}]}}}}
    assert admit(veg, schema) == []
    veg["spec"]["observability"]["conntrack"]["log"]["filters"]["exclude"][0]["translated"][
        "destinationPorts"][0]["start"] = 81
    found = admit(veg, schema)
    assert [m for _, m in found] == [f'Invalid value: "object": {MSG_PORT_RANGE}'], found
    veg["spec"]["observability"] = {}
    veg["spec"]["bandwidth"] = {"egress": "10Kbps"}
    assert any(f == "spec.bandwidth.egress" for f, _ in admit(veg, schema))


def test_cel_rules_accept_edge_cases(schema):
    veg = seed_vegs()[0]
    veg["spec"].update({"replicas": 2, "internalIPs": ["a", "b"], "policies": [],
                        "selectors": [{"namespaceSelector": {"matchLabels": {"a": "b"}}}]})
    assert admit(veg, schema) == []
    veg["spec"]["replicas"] = 0  # zero replicas: any number of IPs is enough
    assert admit(veg, schema) == []


def test_prefix_is_immutable_but_settable_once(schema):
    old = seed_vegs()[0]
    new = copy.deepcopy(old)
    new["spec"]["prefix"] = "veg-"
    assert admit(new, schema, old=old) == []  # transition rules need both values
    newer = copy.deepcopy(new)
    newer["spec"]["prefix"] = "gw-"
    assert admit(newer, schema, old=new) == [
        ("spec.prefix", f'Invalid value: "string": {MSG_IMMUTABLE}')]
    assert admit(newer, schema) == []  # a transition rule does not run on create


# ---------------------------------------------------------------- printer columns


def _headers(table: str) -> list[str]:
    return re.split(r"\s{2,}", table.splitlines()[0].strip())


def _row(table: str) -> list[str]:
    return re.split(r"\s{2,}", table.splitlines()[1].strip())


def _kubectl_cell(obj: dict, json_path: str) -> str:
    """A printer-column cell as kubectl renders simple paths: JSON for lists."""
    cur = obj
    for part in json_path.strip(".").split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    if cur is None:
        return "<none>"
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, (list, dict)):
        return json.dumps(cur, separators=(",", ":"))
    return str(cur)


def test_printer_columns_match_kubectl_get_headers(version):
    cols = version["additionalPrinterColumns"]
    default = ["NAME"] + [c["name"].upper() for c in cols if c.get("priority", 0) == 0]
    wide = ["NAME"] + [c["name"].upper() for c in cols]
    assert default == _headers(SEED_GET)
    assert wide == _headers(SEED_GET_WIDE) == _headers(SEED_GET_WIDE_BFD)
    assert [c["name"] for c in cols] == ["VPC", "Replicas", "BFD Enabled", "External Subnet",
                                         "Phase", "Ready", "Internal IPs", "External IPs",
                                         "Working Nodes", "Age"]
    assert {c["name"] for c in cols if c.get("priority") == 1} == {
        "Internal IPs", "External IPs", "Working Nodes"}
    assert cols[-1] == {"name": "Age", "type": "date",
                        "jsonPath": ".metadata.creationTimestamp"}


@pytest.mark.parametrize("table,veg_index,status", [
    (SEED_GET_WIDE, 0, {"phase": "Completed", "ready": True, "internalIPs": ["10.16.0.12"],
                        "externalIPs": ["172.17.0.11"],
                        "workload": {"nodes": ["kube-ovn-worker"]}}),
    (SEED_GET_WIDE_BFD, 2, {"phase": "Completed", "ready": True,
                            "internalIPs": ["192.168.0.2", "192.168.0.3"],
                            "externalIPs": ["172.17.0.13", "172.17.0.14"],
                            "workload": {"nodes": ["kube-ovn-worker", "kube-ovn-worker2"]}}),
])
def test_printer_columns_render_the_seed_rows(table, veg_index, status, version, schema):
    veg = crd_schema.process_custom(seed_vegs()[veg_index], schema)  # defaults: bfd.enabled
    veg["status"] = dict(status, conditions=[])
    cols = [c for c in version["additionalPrinterColumns"] if c["name"] != "Age"]
    cells = [veg["metadata"]["name"]] + [_kubectl_cell(veg, c["jsonPath"]) for c in cols]
    assert cells == _row(table)[:-1]  # all but AGE


# ---------------------------------------------------------------- RBAC


def _docs(name: str) -> list[dict]:
    return load_all(DEPLOY / name)


def _grants(rules: list[dict]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for r in rules:
        for g in r["apiGroups"]:
            for res in r["resources"]:
                out.setdefault((g, res), set()).update(r["verbs"])
    return out


READ = {"list", "watch"}  # the informers; tests/functional/test_rbac.py records the real requests
EXPECTED_CLUSTER = {
    ("kubeovn.io", "vpc-egress-gateways"): READ | {"patch"},
    ("kubeovn.io", "vpc-egress-gateways/status"): {"patch"},
    ("vegd.io", "vpc-egress-gateways"): READ | {"patch"},
    ("vegd.io", "vpc-egress-gateways/status"): {"patch"},
    ("kubeovn.io", "vpcs"): READ,
    ("kubeovn.io", "vpcs/status"): {"patch"},
    ("kubeovn.io", "subnets"): READ,
    ("", "pods"): READ,
    ("", "namespaces"): READ,
    ("", "nodes"): READ,
    ("apps", "deployments"): READ | {"create", "update"},
    ("", "configmaps"): READ | {"create", "update"},
    ("kubeovn.io", "ippools"): READ,
    ("k8s.cni.cncf.io", "network-attachment-definitions"): READ,
    ("", "events"): {"create"},
}


def test_cluster_role_grants_exactly_what_vegd_needs():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs("rbac.yaml")}
    role = docs[("ClusterRole", "vegd")]
    for r in role["rules"]:
        assert "*" not in r["verbs"] + r["resources"] + r["apiGroups"]
        assert "resourceNames" not in r
    assert _grants(role["rules"]) == EXPECTED_CLUSTER


def test_bindings_tie_the_roles_to_the_service_account():
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs("rbac.yaml")}
    sa = docs[("ServiceAccount", "vegd")]
    assert sa["metadata"]["namespace"] == "vegd-system"
    subject = {"kind": "ServiceAccount", "name": "vegd", "namespace": "vegd-system"}
    crb = docs[("ClusterRoleBinding", "vegd")]
    assert crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "vegd"}
    assert crb["subjects"] == [subject]
    # leadership is the NB lock: no Lease, no namespaced Role
    assert not [k for k in docs if k[0] in ("Role", "RoleBinding")]


# ---------------------------------------------------------------- the vegd Deployment


@pytest.fixture(scope="module")
def vegd_docs() -> dict:
    return {(d["kind"], d["metadata"]["name"]): d for d in _docs("vegd.yaml")}


def test_vegd_deployment(vegd_docs):
    assert ("Namespace", "vegd-system") in vegd_docs
    dep = vegd_docs[("Deployment", "vegd")]
    assert dep["metadata"]["namespace"] == "vegd-system"
    spec = dep["spec"]
    assert spec["replicas"] == 2
    tmpl = spec["template"]
    labels = tmpl["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = tmpl["spec"]
    assert pod["serviceAccountName"] == "vegd" and pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "node-role.kubernetes.io/control-plane" in pod["nodeSelector"]
    assert any(t["key"] == "node-role.kubernetes.io/control-plane" for t in pod["tolerations"])
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti[0]["topologyKey"] == "kubernetes.io/hostname"
    assert anti[0]["labelSelector"]["matchLabels"].items() <= labels.items()
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["command"] == ["vegd", "run", "--config", "/etc/vegd/vegd.conf"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 10667}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/vegd")
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert ("ConfigMap", vol["configMap"]["name"]) in vegd_docs
    pdb = vegd_docs[("PodDisruptionBudget", "vegd")]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_vegd_config_is_what_vegd_reads(vegd_docs, tmp_path):
    from vegd import config as vegd_config

    text = vegd_docs[("ConfigMap", "vegd-config")]["data"]["vegd.conf"]
    parser = configparser.ConfigParser()
    parser.read_string(text)
    known = {(o.section, o.ini) for o in vegd_config.OPTIONS}
    for section in parser.sections():
        for option in parser.options(section):
            assert (section, option) in known, f"[{section}] {option} is not a vegd setting"
    path = tmp_path / "vegd.conf"
    path.write_text(text)
    settings = vegd_config.load_settings(str(path), environ={})
    assert settings.health_port == 10667 and settings.leader_election is True
    assert settings.nb_connection.startswith("tcp:")
