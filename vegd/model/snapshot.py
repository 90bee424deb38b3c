"""Build a Snapshot from plain Kubernetes objects, whichever source they come from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from vegd.model import parse
from vegd.model.errors import ValidationError
from vegd.model.objects import Snapshot
from vegd.model.validate import check_objects, located

# (apiVersion group, kind) -> (Snapshot field, parser)
PARSERS: dict[tuple[str, str], tuple[str, Callable[[Mapping[str, Any]], Any]]] = {
    ("kubeovn.io", "VpcEgressGateway"): ("gateways", parse.parse_gateway),
    ("kubeovn.io", "Vpc"): ("vpcs", parse.parse_vpc),
    ("kubeovn.io", "Subnet"): ("subnets", parse.parse_subnet),
    ("", "Pod"): ("pods", parse.parse_pod),
    ("", "Namespace"): ("namespaces", parse.parse_namespace),
    ("", "Node"): ("nodes", parse.parse_node),
    ("k8s.cni.cncf.io", "NetworkAttachmentDefinition"): ("attachments", parse.parse_attachment),
    ("kubeovn.io", "IPPool"): ("ip_pools", parse.parse_ip_pool),
}


def kind_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    api = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str):
        return "", ""
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    return group, kind


def snapshot_from_sources(sources: Iterable[tuple[str, Any]], errors: list[ValidationError]
                          ) -> Snapshot:
    """Objects from an unadmitted source (`vegd apply`'s directory): each is first checked as
    the API server would (`model.validate`), then parsed. Every error says where the object
    came from."""
    good, refused = check_objects(sources)
    errors.extend(refused)
    return _build(good, errors)


def snapshot_from_objects(objects: Iterable[Mapping[str, Any]],
                          errors: list[ValidationError] | None = None,
                          chassis_by_hostname: Mapping[str, str] | None = None) -> Snapshot:
    """Objects of unknown kinds are ignored. Invalid objects are left out and, when `errors` is
    given, reported there (otherwise the first one raises)."""
    return _build((("", obj) for obj in objects), errors, chassis_by_hostname)


def _build(sources: Iterable[tuple[str, Mapping[str, Any]]],
           errors: list[ValidationError] | None,
           chassis_by_hostname: Mapping[str, str] | None = None) -> Snapshot:
    fields: dict[str, list[Any]] = {f: [] for f, _ in PARSERS.values()}
    for where, obj in sources:
        entry = PARSERS.get(kind_of(obj))
        if entry is None:
            continue
        field, parser = entry
        try:
            fields[field].append(parser(obj))
        except ValidationError as exc:
            if errors is None:
                raise
            errors.append(located(exc, where))
    return Snapshot(
        gateways=tuple(fields["gateways"]),
        vpcs=tuple(fields["vpcs"]),
        subnets=tuple(fields["subnets"]),
        pods=tuple(fields["pods"]),
        namespaces=tuple(fields["namespaces"]),
        nodes=tuple(fields["nodes"]),
        attachments=tuple(fields["attachments"]),
        ip_pools=tuple(fields["ip_pools"]),
        chassis_by_hostname=tuple(sorted((chassis_by_hostname or {}).items())),
    )
