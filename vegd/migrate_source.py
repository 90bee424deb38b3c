"""Where `vegd migrate` reads the gateways as the other controller runs them, and what they refer
to: a manifest directory (`-f DIR`), or the API server (kubeconfig or in-cluster credentials, as
`vegd run`). Either way every object must parse before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vegd.exits import EXIT_INVALID, EXIT_UNAVAILABLE
from vegd.kube.api import KubeApi, KubeError, load_configuration
from vegd.kube.resources import (
    ATTACHMENTS,
    IP_POOLS,
    NAMESPACES,
    NODES,
    PODS,
    SUBNETS,
    VPCS,
    gateways_in,
)
from vegd.model.errors import InvalidObjects, ValidationError
from vegd.model.objects import Snapshot
from vegd.model.snapshot import snapshot_from_objects
from vegd.source.yamldir import SourceError, load_snapshot, read_manifests

SOURCE_GROUP = "kubeovn.io"  # Kube-OVN's controller serves only its own group


CLUSTER_SOURCES = (gateways_in(SOURCE_GROUP), VPCS, SUBNETS, PODS, NAMESPACES, NODES,
                   ATTACHMENTS, IP_POOLS)


class SourceFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Source:
    snap: Snapshot
    gateways: dict[str, dict[str, Any]]  # ns/name -> the gateway object as read (for twins)
    kube: KubeApi | None = None  # the cluster, when read from it (twins are created there)

    def close(self) -> None:
        if self.kube is not None:
            self.kube.close()


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def _raw_gateways(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {_key(o): o for o in objects if o.get("kind") == "VpcEgressGateway"
            and str(o.get("apiVersion") or "").startswith(SOURCE_GROUP + "/")}


def load_source(directory: str | None, kubeconfig: str, only: list[str]) -> Source:
    """The snapshot and the gateway objects. `only`: the gateways asked for; an invalid gateway
    outside them does not stop the others (the cluster has more than the operator moves)."""
    if directory:
        try:
            snap = load_snapshot(directory)
        except (SourceError, InvalidObjects) as exc:
            raise SourceFailed(EXIT_INVALID, str(exc)) from None
        return Source(snap, _raw_gateways([o for _, o in read_manifests(directory)]))
    try:
        kube = KubeApi(load_configuration(kubeconfig))
    except KubeError as exc:
        raise SourceFailed(EXIT_UNAVAILABLE, str(exc)) from None
    try:
        objects = list(kube.list_all(CLUSTER_SOURCES))
    except KubeError as exc:
        kube.close()
        raise SourceFailed(EXIT_UNAVAILABLE, f"kubernetes: {exc}") from None
    errors: list[ValidationError] = []
    snap = snapshot_from_objects(objects, errors)
    asked = {f"VpcEgressGateway {k}" for k in only}
    blocking = [e for e in errors if not (only and e.obj.startswith("VpcEgressGateway ")
                                          and e.obj not in asked)]
    if blocking:
        kube.close()
        raise SourceFailed(EXIT_INVALID, str(InvalidObjects(blocking)))
    return Source(snap, _raw_gateways(objects), kube)
