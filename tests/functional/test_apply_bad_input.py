"""`vegd apply` against hostile and malformed input (issue 10): one table of bad inputs.

Each case changes the seed's manifests (or adds a raw file to the directory); `vegd apply` must
exit 1 with a message naming the object (or file) and the field, print no traceback, and leave NB
byte-identical (`ovsdb-client dump`). docs/reliability.md lists the same cases and outcomes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from ovnstack import OvnStack, have_ovn
from scenario import add_base_topology, gateway_pod, nb_dump, seed_objects

from vegd.cli import main as vegd_main
from vegd.source import yamldir

Objects = list[dict[str, Any]]
VEG1, VEG2 = "VpcEgressGateway default/gateway1", "VpcEgressGateway default/gateway2"
POD2 = "Pod default/gateway2-fcc6b8b87-wmww6"
NET_STATUS = "k8s.v1.cni.cncf.io/network-status"


@dataclass
class Inputs:
    objects: Objects
    files: dict[str, bytes] = field(default_factory=dict)  # extra raw files of the directory

    def find(self, kind: str, name: str) -> dict[str, Any]:
        return next(o for o in self.objects
                    if o.get("kind") == kind and o["metadata"]["name"] == name)

    def spec(self, kind: str, name: str) -> dict[str, Any]:
        return self.find(kind, name)["spec"]

    def gw(self, name: str = "gateway1") -> dict[str, Any]:
        return self.spec("VpcEgressGateway", name)

    def add(self, obj: dict[str, Any]) -> None:
        self.objects.append(obj)

    def copy_of(self, kind: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.find(kind, name))


def _gateway3(inputs: Inputs, **spec: Any) -> None:
    """A second gateway of vpc1 (newer than gateway2), with its instance pod."""
    inputs.add({"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
                "metadata": {"name": "gateway3", "namespace": "default",
                             "creationTimestamp": "2030-01-01T00:00:00Z"},
                "spec": {"vpc": "vpc1", "internalSubnet": "subnet1", "externalSubnet": "macvlan1",
                         "policies": [{"snat": True, "ipBlocks": ["192.168.1.0/24"]}], **spec}})
    inputs.add(gateway_pod("gateway3", 1, "192.168.0.9", "172.17.0.20", "kube-ovn-worker",
                           "subnet1"))


def _target(path: str) -> tuple[str, str, str]:
    """`Kind/name:dotted.path` from the object's root, or a bare path in gateway1's spec."""
    target, _, dotted = path.rpartition(":")
    if not target:
        return "VpcEgressGateway", "gateway1", f"spec.{dotted}"
    kind, _, name = target.partition("/")
    return kind, name, dotted


def _set(path: str, value: Any) -> Callable[[Inputs], None]:
    kind, name, dotted = _target(path)

    def mutate(inputs: Inputs) -> None:
        node: Any = inputs.find(kind, name)
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _drop(path: str) -> Callable[[Inputs], None]:
    kind, name, dotted = _target(path)

    def mutate(inputs: Inputs) -> None:
        node: Any = inputs.find(kind, name)
        *parents, last = dotted.split(".")
        for p in parents:
            node = node[p]
        del node[last]
    return mutate


def _raw(name: str, data: bytes) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.files.__setitem__(name, data)


def _doc(obj: Any) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.add(copy.deepcopy(obj))


def _twice(kind: str, name: str) -> Callable[[Inputs], None]:
    return lambda inputs: inputs.add(inputs.copy_of(kind, name))


def _network_status(value: Any) -> Callable[[Inputs], None]:
    def mutate(inputs: Inputs) -> None:
        pod = inputs.find("Pod", "gateway2-fcc6b8b87-wmww6")
        pod["metadata"]["annotations"][NET_STATUS] = value
    return mutate


_BOMB = "\n".join(['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'] + [
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]).encode()
_SELF_ALIAS = b"apiVersion: v1\nkind: Namespace\nmetadata: &m\n  name: loop\n  labels: *m\n"
_LONG = "a" * 254
_NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ok"}}


def _veg_dup(inputs: Inputs) -> None:
    dup = inputs.copy_of("VpcEgressGateway", "gateway1")
    dup["spec"]["replicas"] = 1
    inputs.add(dup)


def _shared_external_ip(inputs: Inputs) -> None:
    inputs.gw("gateway2")["externalIPs"] = ["172.17.0.50", "172.17.0.51"]
    _gateway3(inputs, externalIPs=["172.17.0.51"])


def _shared_internal_ip(inputs: Inputs) -> None:
    inputs.gw("gateway2")["internalIPs"] = ["192.168.0.50", "192.168.0.51"]
    _gateway3(inputs, internalIPs=["192.168.0.50"])


def _bfd_port_is_instance_ip(inputs: Inputs) -> None:
    inputs.spec("Vpc", "vpc1")["bfdPort"]["ip"] = "192.168.0.3"


def _bfd_port_in_internal_ips(inputs: Inputs) -> None:
    inputs.spec("Vpc", "vpc1")["bfdPort"]["ip"] = "192.168.0.60"
    inputs.gw("gateway2")["internalIPs"] = ["192.168.0.60", "192.168.0.61"]


def _list_doc(items: Any) -> Callable[[Inputs], None]:
    return _doc({"apiVersion": "v1", "kind": "List", "items": items})


# (id, mutation, substrings the message must contain: the object or file, then the field)
CASES: list[tuple[str, Callable[[Inputs], None], tuple[str, ...]]] = [
    # --- the cases issue 10 lists
    ("gateway defined twice", _veg_dup, (VEG1, "metadata.name", "defined twice")),
    ("subnet defined twice", _twice("Subnet", "subnet1"), ("Subnet subnet1", "defined twice")),
    ("vpc defined twice", _twice("Vpc", "vpc1"), ("Vpc vpc1", "metadata.name", "defined twice")),
    ("external IP in two gateways", _shared_external_ip,
     ("VpcEgressGateway default/gateway3", "spec.externalIPs[0]", "172.17.0.51")),
    ("internal subnet is the external subnet", _set("externalSubnet", "ovn-default"),
     (VEG1, "spec.externalSubnet", "also the internal subnet")),
    ("254-character name", _set("VpcEgressGateway/gateway1:metadata.name", _LONG),
     ("VpcEgressGateway default/" + _LONG, "metadata.name", "254 characters")),
    ("forbidden characters in a name", _set("VpcEgressGateway/gateway1:metadata.name", "Gate_1"),
     ("VpcEgressGateway default/Gate_1", "metadata.name", "DNS-1123")),
    ("unknown apiVersion group", _set("VpcEgressGateway/gateway1:apiVersion", "kubeovn.example/v1"),
     (VEG1, "apiVersion", "kubeovn.example/v1")),
    ("kubeovn.io/v2", _set("VpcEgressGateway/gateway1:apiVersion", "kubeovn.io/v2"),
     (VEG1, "apiVersion", "use kubeovn.io/v1")),
    ("document without kind", _doc({"apiVersion": "v1", "metadata": {"name": "x"}}),
     ("object x", "kind: is missing")),
    ("subnet gateway outside its CIDR", _set("Subnet/subnet1:spec.gateway", "192.168.1.1"),
     ("Subnet subnet1", "spec.gateway", "outside")),
    ("bfdPort IP is an instance's IP", _bfd_port_is_instance_ip,
     (VEG2, "spec.bfd.enabled", "192.168.0.3")),
    ("malformed network-status", _network_status("[{not json"),
     (POD2, f"metadata.annotations[{NET_STATUS}]", "not JSON")),
    ("subnet spec is a string", _set("Subnet/subnet1:spec", "cidr"),
     ("Subnet subnet1", "spec: must be an object")),
    ("status.podIPs is a string", _set("Pod/gateway2-fcc6b8b87-wmww6:status.podIPs", "192.168.0.2"),
     (POD2, "status.podIPs", "must be a list")),
    ("annotations is a list", _set("Pod/gateway2-fcc6b8b87-wmww6:metadata.annotations", ["a"]),
     (POD2, "metadata.annotations", "must map")),
    ("kind is an integer", _doc({"apiVersion": "v1", "kind": 7, "metadata": {"name": "x"}}),
     ("object x", "kind: must be a string")),
    ("List items is a string", _list_doc("nope"), ("List", "items: must be a list")),
    ("non-UTF-8 bytes", _raw("latin1.yaml", "kind: Namespace # caf\xe9\n".encode("latin-1")),
     ("latin1.yaml", "not UTF-8")),
    ("YAML alias bomb", _raw("bomb.yaml", _BOMB), ("bomb.yaml document 1", "aliases expand")),
    ("BFD timers beyond FRR's range", _set("VpcEgressGateway/gateway2:spec.bfd.minRX", 100000),
     (VEG2, "spec.bfd.minRX", "10..60000", "FRR")),
    # --- the envelope: documents, kinds, metadata
    ("self-referencing alias", _raw("loop.yaml", _SELF_ALIAS), ("loop.yaml", "refers to")),
    ("broken YAML syntax", _raw("broken.yaml", b"kind: [unclosed\n"), ("broken.yaml",)),
    ("document is a list", _raw("seq.yaml", b"- a\n- b\n"), ("seq.yaml document 1", "(document)")),
    ("document is a scalar", _raw("scalar.yaml", b"just text\n"),
     ("scalar.yaml document 1", "not str")),
    ("unknown kind", _doc({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
     ("ConfigMap c", "kind", "not a kind vegd reads")),
    ("apiVersion missing", _drop("VpcEgressGateway/gateway1:apiVersion"),
     (VEG1, "apiVersion: is missing")),
    ("apiVersion is an integer", _set("Vpc/vpc1:apiVersion", 1), ("Vpc vpc1", "apiVersion")),
    ("Pod in apps/v1", _set("Pod/gateway2-fcc6b8b87-wmww6:apiVersion", "apps/v1"),
     (POD2, "apiVersion", "use v1")),
    ("metadata missing", _doc({"apiVersion": "v1", "kind": "Namespace"}),
     ("Namespace", "metadata: is missing")),
    ("metadata is a string", _doc({"apiVersion": "v1", "kind": "Node", "metadata": "n"}),
     ("Node", "metadata: must be an object")),
    ("name missing", _doc({"apiVersion": "v1", "kind": "Node", "metadata": {"labels": {}}}),
     ("Node", "metadata.name: is missing")),
    ("name is an integer", _doc({"apiVersion": "v1", "kind": "Node", "metadata": {"name": 5}}),
     ("Node", "metadata.name: must be a string")),
    ("namespace name over 63", _doc({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": "n" * 64}}),
     ("Namespace " + "n" * 64, "metadata.name", "more than 63")),
    ("namespace with a dot", _doc({"apiVersion": "v1", "kind": "Namespace",
                                   "metadata": {"name": "a.b"}}),
     ("Namespace a.b", "metadata.name", "DNS-1123 label")),
    ("invalid metadata.namespace", _set("VpcEgressGateway/gateway1:metadata.namespace", "Prod_1"),
     ("VpcEgressGateway Prod_1/gateway1", "metadata.namespace")),
    ("label value is an integer", _set("Pod/gateway2-fcc6b8b87-wmww6:metadata.labels.tier", 3),
     (POD2, "metadata.labels['tier']", "must be strings")),
    ("label value with spaces", _set("Node/kube-ovn-worker:metadata.labels.zone", "zone a"),
     ("Node kube-ovn-worker", "metadata.labels['zone']", "not a valid label value")),
    ("label key with two slashes", _set("Node/kube-ovn-worker:metadata.labels", {"a/b/c": "x"}),
     ("Node kube-ovn-worker", "metadata.labels", "'a/b/c'")),
    ("annotation value is a map", _set("Node/kube-ovn-worker:metadata.annotations", {"k": {}}),
     ("Node kube-ovn-worker", "metadata.annotations['k']")),
    ("List item is a number", _list_doc([_NAMESPACE, 5]), ("item 2", "(document)", "not int")),
    ("Pod defined twice", _twice("Pod", "gateway2-fcc6b8b87-wmww6"), (POD2, "defined twice")),
    ("status is a list", _set("Node/kube-ovn-worker:status", []),
     ("Node kube-ovn-worker", "status: must be an object")),
    # --- VpcEgressGateway fields
    ("gateway spec missing", _drop("VpcEgressGateway/gateway1:spec"), (VEG1, "spec: is missing")),
    ("gateway spec is a list", _set("VpcEgressGateway/gateway1:spec", []), (VEG1, "spec: must be")),
    ("externalSubnet missing", _drop("externalSubnet"), (VEG1, "spec.externalSubnet")),
    ("externalSubnet is a number", _set("externalSubnet", 5), (VEG1, "spec.externalSubnet")),
    ("vpc is a number", _set("vpc", 1), (VEG1, "spec.vpc: must be a string")),
    ("internalSubnet is a list", _set("internalSubnet", ["a"]), (VEG1, "spec.internalSubnet")),
    ("image is a map", _set("image", {"a": 1}), (VEG1, "spec.image: must be a string")),
    ("replicas is a string", _set("replicas", "2"), (VEG1, "spec.replicas", "not an integer")),
    ("replicas is a boolean", _set("replicas", True), (VEG1, "spec.replicas", "not an integer")),
    ("replicas negative", _set("replicas", -1), (VEG1, "spec.replicas", "out of range 0..10")),
    ("prefix with capitals", _set("prefix", "Egress-"), (VEG1, "spec.prefix")),
    ("bfd is a string", _set("VpcEgressGateway/gateway2:spec.bfd", "on"),
     (VEG2, "spec.bfd: must be an object")),
    ("bfd.enabled is a string", _set("VpcEgressGateway/gateway2:spec.bfd.enabled", "true"),
     (VEG2, "spec.bfd.enabled", "not true or false")),
    ("bfd.minTX is a string", _set("VpcEgressGateway/gateway2:spec.bfd.minTX", "fast"),
     (VEG2, "spec.bfd.minTX", "not an integer")),
    ("bfd.minTX below FRR's range", _set("VpcEgressGateway/gateway2:spec.bfd.minTX", 5),
     (VEG2, "spec.bfd.minTX", "10..60000")),
    ("bfd.multiplier 1", _set("VpcEgressGateway/gateway2:spec.bfd.multiplier", 1),
     (VEG2, "spec.bfd.multiplier", "2..255")),
    ("bfd.multiplier beyond the CRD", _set("VpcEgressGateway/gateway2:spec.bfd.multiplier",
                                           4_000_000),
     (VEG2, "spec.bfd.multiplier", "1..3600000")),
    ("bfdMode unknown", _set("VpcEgressGateway/gateway2:spec.bfdMode", "fast"),
     (VEG2, "spec.bfdMode", "not one of")),
    ("policies is a string", _set("policies", "all"), (VEG1, "spec.policies: must be a list")),
    ("policy is a string", _set("policies", ["all"]), (VEG1, "spec.policies[0]: must be")),
    ("ipBlocks is a string",
     _set("VpcEgressGateway/gateway2:spec.policies.0.ipBlocks", "1.0.0.0/8"),
     (VEG2, "spec.policies[0].ipBlocks", "list of strings")),
    ("snat is a string", _set("VpcEgressGateway/gateway2:spec.policies.0.snat", "yes"),
     (VEG2, "spec.policies[0].snat")),
    ("selectors is a map", _set("selectors", {"podSelector": {}}),
     (VEG1, "spec.selectors: must be a list")),
    ("podSelector is a string", _set("selectors", [{"podSelector": "app=x"}]),
     (VEG1, "spec.selectors[0].podSelector")),
    ("matchLabels value is a number",
     _set("selectors", [{"podSelector": {"matchLabels": {"a": 1}}}]),
     (VEG1, "spec.selectors[0].podSelector.matchLabels")),
    ("matchExpressions bad operator",
     _set("selectors", [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}}]),
     (VEG1, "spec.selectors[0].podSelector.matchExpressions[0].operator")),
    ("nodeSelector is a string", _set("nodeSelector", "zone=a"),
     (VEG1, "spec.nodeSelector: must be a list")),
    ("nodeSelector is a number", _set("nodeSelector", 3), (VEG1, "spec.nodeSelector")),
    ("tolerations is a map", _set("tolerations", {"key": "a"}), (VEG1, "spec.tolerations")),
    ("toleration is a string", _set("tolerations", ["NoSchedule"]),
     (VEG1, "spec.tolerations[0]: must be an object")),
    ("internalIPs is a string", _set("internalIPs", "10.16.0.50"),
     (VEG1, "spec.internalIPs", "list of strings")),
    ("internalIPs repeats an address", _set("internalIPs", ["10.16.0.50", "10.16.0.50"]),
     (VEG1, "spec.internalIPs", "listed twice")),
    ("internal IP in two gateways", _shared_internal_ip,
     ("VpcEgressGateway default/gateway3", "spec.internalIPs[0]", "192.168.0.50")),
    ("bfdPort IP in internalIPs", _bfd_port_in_internal_ips,
     (VEG2, "spec.internalIPs[0]", "bfdPort address")),
    ("generation is a string", _set("VpcEgressGateway/gateway1:metadata.generation", "one"),
     (VEG1, "metadata.generation")),
    # --- Vpc, Subnet, Pod, Node fields
    ("bfdPort is a string", _set("Vpc/vpc1:spec.bfdPort", "on"), ("Vpc vpc1", "spec.bfdPort")),
    ("bfdPort.enabled is a string", _set("Vpc/vpc1:spec.bfdPort.enabled", "true"),
     ("Vpc vpc1", "spec.bfdPort.enabled")),
    ("bfdPort.ip is a number", _set("Vpc/vpc1:spec.bfdPort.ip", 10),
     ("Vpc vpc1", "spec.bfdPort.ip: must be a string")),
    ("bfdPort enabled without ip", _drop("Vpc/vpc1:spec.bfdPort.ip"),
     ("Vpc vpc1", "spec.bfdPort.ip", "required")),
    ("bfdPort.nodeSelector is a list", _set("Vpc/vpc1:spec.bfdPort.nodeSelector", ["a"]),
     ("Vpc vpc1", "spec.bfdPort.nodeSelector")),
    ("vpc status.router is a number", _set("Vpc/vpc1:status.router", 1),
     ("Vpc vpc1", "status.router")),
    ("cidrBlock is a number", _set("Subnet/subnet1:spec.cidrBlock", 10),
     ("Subnet subnet1", "spec.cidrBlock: must be a string")),
    ("cidrBlock is not a CIDR", _set("Subnet/subnet1:spec.cidrBlock", "192.168.0.0/40"),
     ("Subnet subnet1", "spec.cidrBlock", "not a CIDR")),
    ("two IPv4 CIDRs", _set("Subnet/subnet1:spec.cidrBlock", "192.168.0.0/24,10.9.0.0/16"),
     ("Subnet subnet1", "spec.cidrBlock", "two CIDRs of one family")),
    ("subnet default is a string", _set("Subnet/ovn-default:spec.default", "yes"),
     ("Subnet ovn-default", "spec.default")),
    ("subnet gateway of the other family", _set("Subnet/subnet1:spec.gateway", "fd00::1"),
     ("Subnet subnet1", "spec.gateway", "no IPv6 CIDR")),
    ("subnet vpc is a list", _set("Subnet/subnet1:spec.vpc", ["vpc1"]),
     ("Subnet subnet1", "spec.vpc")),
    ("pod spec is a string", _set("Pod/gateway2-fcc6b8b87-wmww6:spec", "x"),
     (POD2, "spec: must be an object")),
    ("podIPs entry is a string", _set("Pod/gateway2-fcc6b8b87-wmww6:status.podIPs", ["1.2.3.4"]),
     (POD2, "status.podIPs[0]")),
    ("nodeName is a number", _set("Pod/gateway2-fcc6b8b87-wmww6:spec.nodeName", 1),
     (POD2, "spec.nodeName")),
    ("network-status is an object", _network_status('{"name": "x"}'),
     (POD2, f"metadata.annotations[{NET_STATUS}]", "JSON list")),
    ("network-status ips is a string", _network_status('[{"name": "x", "ips": "1.2.3.4"}]'),
     (POD2, f"metadata.annotations[{NET_STATUS}][0].ips")),
    ("network-status bad address", _network_status('[{"name": "x", "ips": ["1.2.3.999"]}]'),
     (POD2, f"metadata.annotations[{NET_STATUS}][0].ips", "not an IP address")),
    ("node conditions is a map", _set("Node/kube-ovn-worker:status.conditions", {"Ready": True}),
     ("Node kube-ovn-worker", "status.conditions")),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One NB/SB/northd with the base topology and the seed applied: every case starts here."""
    if not have_ovn():
        pytest.skip("OVN (ovn-central) is not installed")
    workdir = tmp_path_factory.mktemp("bad-input")
    stack = OvnStack(workdir / "ovn").start()
    try:
        add_base_topology(stack)
        good = workdir / "good"
        good.mkdir()
        (good / "all.yaml").write_text(yaml.safe_dump_all(seed_objects()))
        assert _apply(stack, good) == 0
        stack.nbctl("--wait=sb", "sync")
        yield stack, workdir
    finally:
        stack.stop()


def _apply(stack, directory) -> int:
    return vegd_main(["apply", "-f", str(directory), "--nb-connection", stack.nb_unix,
                      "--sb-connection", stack.sb_unix])


def _write(inputs: Inputs, directory) -> None:
    directory.mkdir()
    (directory / "all.yaml").write_text(yaml.safe_dump_all(inputs.objects))
    for name, data in inputs.files.items():
        (directory / name).write_bytes(data)


def test_the_table_has_at_least_sixty_distinct_cases():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_1_naming_object_and_field_and_writes_nothing(cluster, capsys, case):
    stack, workdir = cluster
    name, mutate, expected = case
    inputs = Inputs(copy.deepcopy(seed_objects()))
    mutate(inputs)
    directory = workdir / name.replace(" ", "-").replace("/", "-")
    _write(inputs, directory)
    before = nb_dump(stack)
    capsys.readouterr()
    code = _apply(stack, directory)
    err = capsys.readouterr().err
    assert code == 1, err
    for text in expected:
        assert text in err, err
    assert "Traceback" not in err
    assert nb_dump(stack) == before


def test_an_oversized_file_is_refused_before_it_is_read(cluster, capsys, monkeypatch):
    stack, workdir = cluster
    monkeypatch.setattr(yamldir, "MAX_FILE_BYTES", 1024)
    directory = workdir / "oversized"
    _write(Inputs(seed_objects()), directory)
    before = nb_dump(stack)
    capsys.readouterr()
    assert _apply(stack, directory) == 1
    err = capsys.readouterr().err
    assert "all.yaml" in err and "more than the 1024 a manifest file may have" in err
    assert nb_dump(stack) == before
