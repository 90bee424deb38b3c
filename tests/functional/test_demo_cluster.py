"""`bash scripts/demo-cluster`'s transcript is the seed's kubectl session: the column headers
exactly as the seed prints them, the values as the simulated cluster assigned them, the
nexthops in NB, and everything the demo started gone afterwards.

One run of the demo (~20 s: NB/SB/northd, API server, simulated cluster, `vegd run`, kubectl)
serves all the tests of this module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is missing (scripts/setup installs Debian 13's "
    "kubernetes-client; Debian 12 has only 1.20)")

# The seed's header lines, verbatim.
VEG_HEADER = ("NAME       VPC           REPLICAS   BFD ENABLED   EXTERNAL SUBNET   PHASE       "
              "READY   AGE")
DEPLOY_HEADER = "NAME       READY   UP-TO-DATE   AVAILABLE   AGE"
POD_WIDE_COLUMNS = ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                    "READINESS GATES"]
VEG_WIDE_COLUMNS = ["NAME", "VPC", "REPLICAS", "BFD ENABLED", "EXTERNAL SUBNET", "PHASE", "READY",
                    "INTERNAL IPS", "EXTERNAL IPS", "WORKING NODES", "AGE"]


@pytest.fixture(scope="module")
def transcript() -> dict[str, list[str]]:
    """command -> its output lines, in the order the demo ran them (repeats get #2, #3)."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo-cluster")], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=300,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith(("KUBECONFIG", "OVN_", "VEGD_"))})
    out = proc.stdout
    assert proc.returncode == 0, out
    sections: dict[str, list[str]] = {}
    current = "preamble"
    for line in out.splitlines():
        if line.startswith("$ "):
            current = line[2:].strip()
            n = 2
            while current in sections:
                current = f"{line[2:].strip()} #{n}"
                n += 1
            sections[current] = []
        elif line.strip():
            sections.setdefault(current, []).append(line)
    return sections


def _table(lines: list[str]) -> list[dict[str, str]]:
    """kubectl's aligned columns, cut at the header's column starts."""
    header = lines[0]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s{2}))\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [{n: row[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None],
                                                    strict=True)} for row in lines[1:]]


def _pods(transcript, gateway: str, nth: str = "") -> list[dict[str, str]]:
    return _table(transcript[f"kubectl get pod -l ovn.kubernetes.io/vpc-egress-gateway={gateway}"
                             f" -o wide{nth}"])


def test_the_crd_and_the_seed_manifests_apply_with_validation_on(transcript):
    assert transcript["kubectl apply -f deploy/crds/"] == [
        "customresourcedefinition.apiextensions.k8s.io/vpc-egress-gateways.kubeovn.io created"]
    applied = transcript["kubectl apply -f examples/seed/cluster.yaml"]
    assert "subnet.kubeovn.io/macvlan1 created" in applied
    assert "networkattachmentdefinition.k8s.cni.cncf.io/eth1 created" in applied
    first = next(k for k in transcript if k.startswith("kubectl apply -f - <<EOF   # the seed's"))
    assert transcript[first] == ["vpcegressgateway.kubeovn.io/gateway1 created"]


def test_get_veg_prints_the_seed_columns_and_the_assigned_values(transcript):
    lines = transcript["kubectl get veg gateway1"]
    assert lines[0] == VEG_HEADER
    row = _table(lines)[0]
    assert (row["NAME"], row["VPC"], row["REPLICAS"], row["BFD ENABLED"],
            row["EXTERNAL SUBNET"], row["PHASE"], row["READY"]) == (
        "gateway1", "ovn-cluster", "1", "false", "macvlan1", "Completed", "true")
    assert re.fullmatch(r"\d+s", row["AGE"])


def test_get_veg_wide_shows_the_pods_addresses_and_nodes(transcript):
    lines = transcript["kubectl get veg gateway1 -o wide"]
    assert re.split(r"\s{2,}", lines[0].strip()) == VEG_WIDE_COLUMNS
    row = _table(lines)[0]
    pod = _pods(transcript, "gateway1")[0]
    assert row["INTERNAL IPS"] == json.dumps([pod["IP"]])
    assert row["EXTERNAL IPS"] == '["172.17.0.11"]'  # macvlan1's first after excludeIps
    assert row["WORKING NODES"] == json.dumps([pod["NODE"]])
    assert (row["PHASE"], row["READY"]) == ("Completed", "true")


def test_deployment_and_pods_as_kubectl_prints_them(transcript):
    lines = transcript["kubectl get deployment -l ovn.kubernetes.io/vpc-egress-gateway=gateway1"]
    assert lines[0] == DEPLOY_HEADER
    dep = _table(lines)[0]
    assert (dep["NAME"], dep["READY"], dep["UP-TO-DATE"], dep["AVAILABLE"]) == (
        "gateway1", "1/1", "1", "1")
    pods = _table(transcript["kubectl get pod -l ovn.kubernetes.io/vpc-egress-gateway=gateway1 "
                             "-o wide"])
    assert list(pods[0]) == POD_WIDE_COLUMNS
    assert len(pods) == 1
    pod = pods[0]
    assert re.fullmatch(r"gateway1-[a-z0-9]+-[a-z0-9]{5}", pod["NAME"])
    assert (pod["READY"], pod["STATUS"], pod["RESTARTS"]) == ("1/1", "Running", "0")
    assert pod["IP"].startswith("10.16.0.")
    assert (pod["NOMINATED NODE"], pod["READINESS GATES"]) == ("<none>", "<none>")


def _nexthops(lines: list[str]) -> list[str]:
    row = next(x for x in lines if x.split()[:1] == ["29100"])
    assert "ip4.src == 10.16.0.0/16" in row and "reroute" in row
    return [h.strip() for h in row.split("reroute", 1)[1].split(",")]


def test_lr_policy_list_reroutes_to_the_pod(transcript):
    pod = _pods(transcript, "gateway1")[0]
    assert _nexthops(transcript["ovn-nbctl lr-policy-list ovn-cluster"]) == [pod["IP"]]


def test_scale_to_two_gives_two_nexthops_replicas_two_and_ready(transcript):
    assert transcript["kubectl scale veg gateway1 --replicas=2"] == [
        "vpcegressgateway.kubeovn.io/gateway1 scaled"]
    row = _table(transcript["kubectl get veg gateway1 #2"])[0]
    assert (row["REPLICAS"], row["PHASE"], row["READY"]) == ("2", "Completed", "true")
    pods = _pods(transcript, "gateway1", " #2")
    assert len(pods) == 2 and {p["STATUS"] for p in pods} == {"Running"}
    assert len({p["NODE"] for p in pods}) == 2  # required anti-affinity: one per node
    assert sorted(_nexthops(transcript["ovn-nbctl lr-policy-list ovn-cluster #2"])) == sorted(
        p["IP"] for p in pods)


def test_gateway2_with_bfd_routes_and_bfd_rows(transcript):
    row = _table(transcript["kubectl get veg gateway2 -o wide"])[0]
    pods = _pods(transcript, "gateway2")
    ips = sorted(p["IP"] for p in pods)
    assert (row["VPC"], row["REPLICAS"], row["BFD ENABLED"], row["PHASE"], row["READY"]) == (
        "vpc1", "2", "true", "Completed", "true")
    assert json.loads(row["INTERNAL IPS"]) == ips
    assert len(json.loads(row["EXTERNAL IPS"])) == 2
    assert sorted(json.loads(row["WORKING NODES"])) == sorted(p["NODE"] for p in pods)
    routes = transcript["ovn-nbctl lr-route-list vpc1"]
    for ip in ips:
        assert any(r.split()[:2] == ["192.168.0.0/24", ip] and r.endswith(
            "src-ip ecmp ecmp-symmetric-reply bfd") for r in routes), routes
    bfd = "\n".join(transcript["ovn-nbctl list bfd"])
    for ip in ips:
        assert f'dst_ip              : "{ip}"' in bfd
    assert bfd.count('vpc-egress-gateway="default/gateway2"') == 2


def test_a_veg_breaking_a_cel_rule_is_refused_with_the_crds_message(transcript):
    refused = next(v for k, v in transcript.items() if "a CEL rule says no" in k)
    assert refused == ['The VpcEgressGateway "gateway3" is invalid: spec.internalIPs: Invalid '
                       'value: "object": Size of Internal IPs MUST be equal to or greater than '
                       'Replicas']
    names = [r["NAME"] for r in _table(transcript["kubectl get veg"])]
    assert names == ["gateway1", "gateway2"]


def test_the_demo_stops_everything_it_started(transcript):
    workdir = re.search(r"in (/tmp/vegd-demo-cluster\.\S+)", "\n".join(transcript["preamble"]))
    assert workdir, transcript["preamble"]
    assert not Path(workdir[1]).exists()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert workdir[1] not in text, (cmdline, text)
