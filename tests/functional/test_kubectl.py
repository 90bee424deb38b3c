"""The real kubectl (1.32) against the test API server: CRDs from deploy/crds/, discovery,
validation with it on (server-side, fieldValidation=Strict, from the OpenAPI v3 document),
the CRD's CEL rules, server-side printing, scale."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

pytest_plugins = ["kubeapi.fixture"]

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
SEED = ROOT / "examples" / "seed"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is missing (scripts/setup installs Debian 13's "
    "kubernetes-client; Debian 12 has only 1.20)")

VEG_HEADER = ("NAME       VPC           REPLICAS   BFD ENABLED   EXTERNAL SUBNET   PHASE       "
              "READY   AGE")
VEG_WIDE_HEADER = ("NAME       VPC           REPLICAS   BFD ENABLED   EXTERNAL SUBNET   "
                   "PHASE       READY   INTERNAL IPS     EXTERNAL IPS      WORKING NODES         "
                   "AGE")
GATEWAY1 = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
            "metadata": {"name": "gateway1", "namespace": "default"},
            "spec": {"vpc": "ovn-cluster", "replicas": 1, "externalSubnet": "macvlan1",
                     "policies": [{"snat": True, "subnets": ["ovn-default"]}]}}


class Kubectl:
    def __init__(self, server: str, tmp: Path) -> None:
        self.tmp = tmp
        (tmp / "kubeconfig").write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "t", "cluster": {"server": server}}],
            "users": [{"name": "t", "user": {}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t",
                                                   "namespace": "default"}}]}))

    def __call__(self, *args: str, stdin: str | None = None, ok: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.tmp),
               "KUBECONFIG": str(self.tmp / "kubeconfig"),
               "KUBECACHEDIR": str(self.tmp / "cache")}
        proc = subprocess.run([KUBECTL or "kubectl", *args], input=stdin, capture_output=True,
                              text=True, env=env, timeout=60)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def apply(self, obj: dict, *extra: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        return self("apply", *extra, "-f", "-", stdin=yaml.safe_dump(obj), ok=ok)


@pytest.fixture
def bare(tmp_path):
    """A server with no CRD installed (as before `kubectl apply -f deploy/crds/`)."""
    from kubeapi.fixture import KubeApi

    api = KubeApi(crds=())
    try:
        yield api, Kubectl(api.url, tmp_path)
    finally:
        api.close()


@pytest.fixture
def kubectl(kubeapi, tmp_path):
    return Kubectl(kubeapi.url, tmp_path)


def _veg_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "VpcEgressGateway"]


# ---------------------------------------------------------------- CRDs and discovery


def test_apply_crd_then_seed_manifests_with_validation_on(bare):
    api, kubectl = bare
    assert kubectl("get", "veg", ok=False).returncode != 0  # not served yet
    out = kubectl("apply", "-f", str(CRD_DIR)).stdout
    assert out == ("customresourcedefinition.apiextensions.k8s.io/vpc-egress-gateways.kubeovn.io"
                   " created\n")
    established = kubectl("get", "crd", "vpc-egress-gateways.kubeovn.io", "-o",
                          "jsonpath={.status.conditions[?(@.type==\"Established\")].status}")
    assert established.stdout == "True"
    resources = kubectl("api-resources", "--api-group=kubeovn.io", "--no-headers").stdout
    veg = next(line.split() for line in resources.splitlines()
               if line.startswith("vpc-egress-gateways"))
    assert veg == ["vpc-egress-gateways", "vpc-egress-gw,veg", "kubeovn.io/v1", "true",
                   "VpcEgressGateway"]
    kubectl("apply", "-f", str(SEED / "cluster.yaml"))
    for name in ("gateway1.yaml", "gateway2.yaml"):
        for doc in _veg_docs(SEED / name):
            assert "created" in kubectl.apply(doc).stdout
    assert kubectl.apply(_veg_docs(SEED / "gateway1.yaml")[0]).stdout.endswith("unchanged\n")
    stored = api.get("kubeovn.io/v1", "VpcEgressGateway", "gateway2", "default")
    assert stored["spec"]["bfd"] == {"enabled": True, "minRX": 1000, "minTX": 1000,
                                     "multiplier": 3}  # the CRD's defaults


def test_deleting_the_crd_deletes_its_objects_and_stops_serving_it(bare):
    api, kubectl = bare
    kubectl("apply", "-f", str(CRD_DIR))
    kubectl.apply(GATEWAY1)
    kubectl("delete", "-f", str(CRD_DIR))
    assert not api.store.objects.get(("kubeovn.io", "vpc-egress-gateways"))
    resources = kubectl("api-resources", "--api-group=kubeovn.io", "-o", "name").stdout
    assert resources.split() == ["ippools.kubeovn.io", "subnets.kubeovn.io", "vpcs.kubeovn.io"]
    gone = kubectl("get", "vpc-egress-gateways.kubeovn.io", ok=False)
    assert gone.returncode != 0
    assert gone.stderr == 'error: the server doesn\'t have a resource type "vpc-egress-gateways"\n'


def test_a_crd_whose_cel_rule_does_not_compile_is_refused(bare):
    _, kubectl = bare
    crd = yaml.safe_load((CRD_DIR / "vpc-egress-gateway.yaml").read_text())
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["x-kubernetes-validations"].append({"rule": "self.replicas >", "message": "m"})
    index = len(spec_schema["x-kubernetes-validations"]) - 1
    out = kubectl.apply(crd, ok=False)
    assert out.returncode != 0
    assert f"x-kubernetes-validations[{index}].rule" in out.stderr
    assert "compilation failed" in out.stderr


def test_categories_and_short_names_come_from_the_crd(bare):
    _, kubectl = bare
    crd = yaml.safe_load((CRD_DIR / "vpc-egress-gateway.yaml").read_text())
    crd["spec"]["names"]["categories"] = ["egress"]
    kubectl.apply(crd)
    kubectl.apply(GATEWAY1)
    assert kubectl("get", "egress", "-o", "name").stdout == (
        "vpcegressgateway.kubeovn.io/gateway1\n")
    assert kubectl("get", "vpc-egress-gw", "-o", "name").stdout == (
        "vpcegressgateway.kubeovn.io/gateway1\n")


# ---------------------------------------------------------------- validation


def test_cel_rules_refuse_with_the_crds_messages(kubectl):
    bad = copy.deepcopy(GATEWAY1)
    bad["spec"].update({"replicas": 2, "internalIPs": ["10.16.0.100"], "policies": []})
    out = kubectl.apply(bad, ok=False)
    assert out.returncode != 0
    assert out.stderr.splitlines() == [
        'The VpcEgressGateway "gateway1" is invalid: ',
        '* spec.internalIPs: Invalid value: "object": Size of Internal IPs MUST be equal to or '
        'greater than Replicas',
        '* spec: Invalid value: "object": Each VPC Egress Gateway MUST have at least one policy '
        'or selector']


def test_the_prefix_transition_rule_runs_on_update_only(kubectl):
    veg = copy.deepcopy(GATEWAY1)
    veg["spec"]["prefix"] = "egress-"
    kubectl.apply(veg)  # create: oldSelf does not exist, the rule is not evaluated
    veg["spec"]["prefix"] = "other-"
    out = kubectl.apply(veg, ok=False)
    assert out.returncode != 0
    assert 'spec.prefix: Invalid value: "string": This field is immutable.' in out.stderr


def test_unknown_fields_strict_by_default_warn_and_ignore_on_request(kubectl, kubeapi):
    veg = copy.deepcopy(GATEWAY1)
    veg["spec"]["bogus"] = 1
    strict = kubectl.apply(veg, ok=False)
    assert strict.returncode != 0
    assert ('VpcEgressGateway in version "v1" cannot be handled as a VpcEgressGateway: strict '
            'decoding error: unknown field "spec.bogus"') in strict.stderr
    warned = kubectl.apply(veg, "--validate=warn")
    assert 'unknown field "spec.bogus"' in warned.stderr
    stored = kubeapi.get("kubeovn.io/v1", "VpcEgressGateway", "gateway1", "default")
    assert "bogus" not in stored["spec"]  # pruned
    veg["spec"]["other"] = 2
    assert kubectl.apply(veg, "--validate=false").returncode == 0


# ---------------------------------------------------------------- printing and scale


def _with_status(kubeapi, veg: dict, status: dict) -> None:
    body = copy.deepcopy(veg)
    body["status"] = status
    kubeapi.create(body)


SEED_STATUS = {"replicas": 1, "ready": True, "phase": "Completed", "conditions": [],
               "internalIPs": ["10.16.0.12"], "externalIPs": ["172.17.0.11"],
               "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway1",
                            "nodes": ["kube-ovn-worker"]}}


def test_get_veg_and_wide_print_the_seeds_lines(kubectl, kubeapi):
    _with_status(kubeapi, GATEWAY1, SEED_STATUS)
    lines = kubectl("get", "veg", "gateway1").stdout.splitlines()
    assert lines[0] == VEG_HEADER
    assert lines[1].split() == ["gateway1", "ovn-cluster", "1", "false", "macvlan1", "Completed",
                                "true", lines[1].split()[-1]]
    wide = kubectl("get", "veg", "gateway1", "-o", "wide").stdout.splitlines()
    assert wide[0] == VEG_WIDE_HEADER  # the seed's column widths too: same values
    assert wide[1].rsplit(None, 1)[0] == (
        'gateway1   ovn-cluster   1          false         macvlan1          Completed   true    '
        '["10.16.0.12"]   ["172.17.0.11"]   ["kube-ovn-worker"]')


def test_the_table_the_server_sends(kubeapi):
    _with_status(kubeapi, GATEWAY1, SEED_STATUS)
    req = urllib.request.Request(
        kubeapi.url + "/apis/kubeovn.io/v1/namespaces/default/vpc-egress-gateways",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/json;as=Table;v=v1;g=meta.k8s.io"
        tab = json.loads(resp.read())
    assert tab["kind"] == "Table" and tab["apiVersion"] == "meta.k8s.io/v1"
    cols = [(c["name"], c["type"], c["priority"]) for c in tab["columnDefinitions"]]
    assert cols == [("Name", "string", 0), ("VPC", "string", 0), ("Replicas", "integer", 0),
                    ("BFD Enabled", "boolean", 0), ("External Subnet", "string", 0),
                    ("Phase", "string", 0), ("Ready", "boolean", 0),
                    ("Internal IPs", "string", 1), ("External IPs", "string", 1),
                    ("Working Nodes", "string", 1), ("Age", "date", 0)]
    row = tab["rows"][0]
    assert row["cells"][:10] == ["gateway1", "ovn-cluster", 1, False, "macvlan1", "Completed",
                                 True, '["10.16.0.12"]', '["172.17.0.11"]', '["kube-ovn-worker"]']
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "gateway1"


def test_pods_and_deployments_print_the_built_in_columns(kubectl, kubeapi):
    apps = client.AppsV1Api(kubeapi.api_client())
    apps.create_namespaced_deployment("default", {
        "metadata": {"name": "gateway1", "labels": {"app": "g"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "g"}},
                 "template": {"metadata": {"labels": {"app": "g"}}, "spec": {"containers": [
                     {"name": "gateway", "image": "kube-ovn:v1"},
                     {"name": "bfdd", "image": "kube-ovn:v1"}]}}}})
    apps.patch_namespaced_deployment_status("gateway1", "default", {"status": {
        "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}})
    deps = kubectl("get", "deployment", "-o", "wide").stdout.splitlines()
    assert deps[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS",
                               "IMAGES", "SELECTOR"]
    assert deps[1].split()[:4] == ["gateway1", "1/2", "2", "1"]
    assert deps[1].split()[5:] == ["gateway,bfdd", "kube-ovn:v1,kube-ovn:v1", "app=g"]
    kubeapi.create({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "p1", "namespace": "default"}, "spec": {"nodeName": "kube-ovn-worker",
                                                        "containers": [{"name": "c",
                                                                        "image": "i"}]},
        "status": {"phase": "Running", "podIP": "10.16.0.12", "containerStatuses": [
            {"name": "c", "ready": True, "restartCount": 0, "state": {"running": {}}}]}})
    pods = kubectl("get", "pod", "-o", "wide").stdout.splitlines()
    assert pods[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
                               "NOMINATED", "NODE", "READINESS", "GATES"]
    cells = pods[1].split()
    assert cells[:4] + cells[5:] == ["p1", "1/1", "Running", "0", "10.16.0.12",
                                     "kube-ovn-worker", "<none>", "<none>"]
    assert kubectl("get", "pod").stdout.splitlines()[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE"]


def test_kubectl_scale_goes_through_the_scale_subresource(kubectl, kubeapi):
    kubectl.apply(GATEWAY1)
    assert kubectl("scale", "veg", "gateway1", "--replicas=2").stdout == (
        "vpcegressgateway.kubeovn.io/gateway1 scaled\n")
    stored = kubeapi.get("kubeovn.io/v1", "VpcEgressGateway", "gateway1", "default")
    assert stored["spec"]["replicas"] == 2 and stored["metadata"]["generation"] == 2
    too_many = kubectl("scale", "veg", "gateway1", "--replicas=11", ok=False)
    assert too_many.returncode != 0 and "spec.replicas" in too_many.stderr
