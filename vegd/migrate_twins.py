"""vegd's twin of each migrated gateway: the same name, namespace and spec in vegd's API group,
its Deployment prefixed `vegd-` so both workloads run side by side, annotated with where it came
from. Written to a directory (`--objects-out`, for kubectl) or created through the API server
when the source is the cluster; `--back` deletes only the twins the migration created."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vegd.exits import EXIT_INVALID, EXIT_UNAVAILABLE
from vegd.kube.api import KubeApi, KubeError
from vegd.kube.resources import gateways_in
from vegd.migrate_source import SourceFailed
from vegd.workload.status import MIGRATED_FROM

TWIN_PREFIX = "vegd-"  # the twin's Deployment must not take the other one's name


def origin(raw: Mapping[str, Any]) -> str:
    meta = raw.get("metadata") or {}
    return f"{raw.get('apiVersion') or 'kubeovn.io/v1'} {meta.get('namespace')}/{meta.get('name')}"


def twin(raw: Mapping[str, Any], group: str) -> dict[str, Any]:
    """vegd's object for a gateway the other controller ran: the same name and spec in vegd's
    group, its Deployment prefixed so both workloads can run side by side."""
    meta = raw.get("metadata") or {}
    spec = copy.deepcopy(raw.get("spec") or {})
    spec["prefix"] = TWIN_PREFIX + str(spec.get("prefix") or "")
    version = str(raw.get("apiVersion") or "kubeovn.io/v1")
    return {"apiVersion": f"{group}/{version.rpartition('/')[2]}", "kind": "VpcEgressGateway",
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace") or "default",
                         "labels": dict(meta.get("labels") or {}),
                         "annotations": {MIGRATED_FROM: origin(raw)}},
            "spec": spec}


def write_twins(raws: list[Mapping[str, Any]], group: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "vpc-egress-gateways.yaml"
    path.write_text("".join("---\n" + json.dumps(twin(r, group), indent=2) + "\n" for r in raws))
    return path


@dataclass
class ClusterTwins:
    """The twins in the API server's `group`."""

    kube: KubeApi
    group: str

    @property
    def resource(self) -> Any:
        return gateways_in(self.group)

    def check(self, raws: dict[str, Mapping[str, Any]]) -> dict[str, bool]:
        """Before any write: the group is served, and no object of a twin's name exists other
        than a twin of the same origin (a re-run). key -> the twin still has to be created."""
        try:
            self.kube.list(self.resource, limit=1)
        except KubeError as exc:
            if exc.not_found:
                raise SourceFailed(EXIT_INVALID, f"the API server does not serve "
                                   f"VpcEgressGateways in {self.group}: install "
                                   "deploy/vegd-group/ (or give --group)") from None
            raise SourceFailed(EXIT_UNAVAILABLE, f"kubernetes: {exc}") from None
        todo = {}
        for key, raw in raws.items():
            ns, _, name = key.partition("/")
            try:
                have = self.kube.get_custom(self.resource, ns, name)
            except KubeError as exc:
                if not exc.not_found:
                    raise SourceFailed(EXIT_UNAVAILABLE, f"kubernetes: {exc}") from None
                todo[key] = True
                continue
            if ((have.get("metadata") or {}).get("annotations") or {}).get(MIGRATED_FROM) \
                    != origin(raw):
                raise SourceFailed(EXIT_INVALID, f"VpcEgressGateway {key} already exists in "
                                   f"{self.group} and is not this migration's twin (annotation "
                                   f"{MIGRATED_FROM}): refusing to touch it")
            todo[key] = False
        return todo

    def create(self, raw: Mapping[str, Any]) -> dict[str, str]:
        body = twin(raw, self.group)
        made = self.kube.create_custom(self.resource, body["metadata"]["namespace"], body)
        meta = made.get("metadata") or {}
        return {"group": self.group, "namespace": str(meta.get("namespace")),
                "name": str(meta.get("name")), "uid": str(meta.get("uid")),
                MIGRATED_FROM: body["metadata"]["annotations"][MIGRATED_FROM]}

    def remove(self, made: Mapping[str, str], timeout: float) -> bool:
        """Delete a twin this migration created (that incarnation only) and wait until it is
        gone (vegd's finalizer removes its rows first). False: still there after `timeout`."""
        res, ns, name = gateways_in(made["group"]), made["namespace"], made["name"]
        try:
            self.kube.delete_custom(res, ns, name, made["uid"])
        except KubeError as exc:
            if exc.not_found:
                return True
            raise
        deadline = time.monotonic() + timeout
        while True:
            try:
                have = self.kube.get_custom(res, ns, name)
            except KubeError as exc:
                if exc.not_found:
                    return True
                raise
            if (have.get("metadata") or {}).get("uid") != made["uid"]:
                return True  # a new object of that name is not ours
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
