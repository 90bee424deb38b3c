"""A directory (or file) of Kubernetes YAML manifests as a Snapshot: the cluster-less source."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from vegd.model.errors import InvalidObjects, ValidationError
from vegd.model.objects import Snapshot
from vegd.model.snapshot import snapshot_from_objects


class SourceError(ValueError):
    """The manifests cannot be read at all (missing path, broken YAML)."""


def read_manifests(path: str | Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, object) for every document of every *.yaml/*.yml/*.json file, sorted by path."""
    root = Path(path)
    if not root.exists():
        raise SourceError(f"{root}: no such file or directory")
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    for file in files:
        try:
            docs = list(yaml.load_all(file.read_text(), Loader=yaml.CSafeLoader))
        except (OSError, yaml.YAMLError) as exc:
            raise SourceError(f"{file}: {exc}") from exc
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            if not isinstance(doc, Mapping):
                raise SourceError(f"{file} document {i + 1}: not a Kubernetes object")
            for item in doc.get("items", [doc]) if doc.get("kind", "").endswith("List") else [doc]:
                yield f"{file} document {i + 1}", item


def load_snapshot(path: str | Path) -> Snapshot:
    """Parse every object; raise InvalidObjects listing every invalid one."""
    objects = [obj for _, obj in read_manifests(path)]
    errors: list[ValidationError] = []
    snap = snapshot_from_objects(objects, errors)
    if errors:
        raise InvalidObjects(errors)
    return snap
