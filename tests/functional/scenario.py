"""Build manifest directories from the seed examples, apply them, read NB back."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import ovnbuild
import yaml

from vegd.cli import main as vegd_main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"
BASE_TOPOLOGY = ROOT / "examples" / "base-topology.sh"


def seed_objects() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for file in sorted(SEED.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(file.read_text()) if d)
    return docs


class Scenario:
    """A mutable list of Kubernetes objects that can be written out and applied."""

    def __init__(self, ovn, workdir: Path, objects: list[dict[str, Any]] | None = None):
        self.ovn = ovn
        self.dir = workdir
        self.objects = copy.deepcopy(objects if objects is not None else seed_objects())
        self.runs = 0

    def find(self, kind: str, name: str) -> dict[str, Any]:
        return next(o for o in self.objects if o["kind"] == kind and o["metadata"]["name"] == name)

    def remove(self, kind: str, name: str) -> None:
        self.objects = [o for o in self.objects
                        if not (o["kind"] == kind and o["metadata"]["name"] == name)]

    def pods_of(self, gateway: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == "Pod" and o["metadata"].get("labels", {})
                .get("ovn.kubernetes.io/vpc-egress-gateway") == gateway]

    def write(self) -> Path:
        self.runs += 1
        out = self.dir / f"manifests-{self.runs}"
        out.mkdir(parents=True)
        (out / "all.yaml").write_text(yaml.safe_dump_all(self.objects))
        return out

    def apply(self, *extra: str, capsys=None) -> tuple[int, dict[str, Any] | str]:
        """Run `vegd apply` in-process; returns (exit code, parsed JSON report or stderr)."""
        args = ["apply", "-f", str(self.write()), "--nb-connection", self.ovn.nb_unix,
                "--sb-connection", self.ovn.sb_unix, "--output", "json", *extra]
        code = vegd_main(args)
        if capsys is None:
            return code, ""
        out = capsys.readouterr()
        return code, (json.loads(out.out) if code == 0 and out.out.strip() else out.err)


def add_base_topology(ovn) -> None:
    subprocess.run(["bash", str(BASE_TOPOLOGY), ovn.nb_unix], check=True, env=ovn.env,
                   capture_output=True)


def pod(name: str, ip: str, node: str = "kube-ovn-worker", namespace: str = "default",
        labels: dict[str, str] | None = None, switch: str = "") -> dict[str, Any]:
    annotations = {"ovn.kubernetes.io/logical_switch": switch} if switch else {}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                         "annotations": annotations},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIPs": [{"ip": i} for i in ip.split(",")]}}


def gateway_pod(gateway: str, index: int, ips: str, external: str, node: str,
                switch: str) -> dict[str, Any]:
    p = pod(f"{gateway}-{index}", ips, node, labels={
        "app": "vpc-egress-gateway", "ovn.kubernetes.io/vpc-egress-gateway": gateway},
        switch=switch)
    p["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps([
        {"name": "kube-ovn", "interface": "eth0", "ips": ips.split(","), "default": True},
        {"name": "default/eth1", "interface": "net1", "ips": external.split(",")}])
    return p


def require_policy_bfd_sessions(ovn) -> None:
    ovnbuild.require_policy_bfd_sessions(ovn.nb_unix)


def nb_dump(ovn) -> str:
    """Every NB row, for before/after comparisons (one table a line), without what ovn-northd
    writes in its own time: `BFD.status`, filled in an iteration or two after a BFD row is made
    (seen arriving between the two dumps of a refused apply on a loaded machine)."""
    tables = []
    for line in ovn._run("ovsdb-client", "-f", "json", "dump", ovn.nb_unix,
                         "OVN_Northbound").splitlines():
        table = json.loads(line)
        if table["caption"] == "BFD table":
            status = table["headings"].index("status")
            for row in table["data"]:
                row[status] = "(northd's)"
        tables.append(json.dumps(table, sort_keys=True))
    return "\n".join(tables)
