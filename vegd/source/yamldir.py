"""A directory (or file) of Kubernetes YAML manifests as a Snapshot: the cluster-less source.

Reading is defensive: every file is size-capped before it is read, decoded as strict UTF-8, parsed
with libyaml (`yaml.CSafeLoader`: no Python object tags, and fast), and each document's alias
expansion is bounded, so a "billion laughs" document is refused in milliseconds instead of
exhausting memory later when something walks it. Every error names the file and the document.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from vegd.model.errors import InvalidObjects, ValidationError
from vegd.model.objects import Snapshot
from vegd.model.snapshot import snapshot_from_sources

MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any manifest directory; refuses a runaway file
MAX_ALIAS_NODES = 1_000_000  # nodes aliases may add to one document beyond its own
SUFFIXES = (".yaml", ".yml", ".json")


class SourceError(ValueError):
    """The manifests cannot be read at all (missing path, broken YAML, hostile input)."""


def read_manifests(path: str | Path) -> Iterator[tuple[str, Any]]:
    """(where, object) for every document of every *.yaml/*.yml/*.json file, sorted by path.

    Items of a `kind: *List` document are yielded one by one. Objects are yielded as parsed:
    their shape is checked by `model.validate`, not here."""
    root = Path(path)
    if not root.exists():
        raise SourceError(f"{root}: no such file or directory")
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    for file in files:
        docs, aliases = _load(file)
        for i, doc in enumerate(docs):
            where = f"{file} document {i + 1}"
            if doc is None:
                continue
            if aliases:
                _check_expansion(doc, where)
            yield from _items(doc, where)


def _load(file: Path) -> tuple[list[Any], bool]:
    """The documents, and whether the text may hold YAML aliases (every alias starts with `*`:
    a file without one has nothing to expand)."""
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SourceError(f"{file}: {size} bytes, more than the {MAX_FILE_BYTES} a manifest "
                              "file may have")
        data = file.read_bytes()
    except OSError as exc:
        raise SourceError(f"{file}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{file}: not UTF-8 text (byte {exc.start}: "
                          f"{data[exc.start:exc.start + 1]!r})") from None
    try:
        return list(yaml.load_all(text, Loader=yaml.CSafeLoader)), "*" in text
    except yaml.YAMLError as exc:
        raise SourceError(f"{file}: {exc}") from exc
    except RecursionError:
        raise SourceError(f"{file}: nested too deeply") from None


def _items(doc: Any, where: str) -> Iterator[tuple[str, Any]]:
    kind = doc.get("kind") if isinstance(doc, Mapping) else None
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in doc):
        yield where, doc
        return
    items = doc["items"]
    if not isinstance(items, list):
        raise SourceError(f"{where}: {kind}: items: must be a list of objects, "
                          f"not {type(items).__name__}")
    for j, item in enumerate(items):
        yield f"{where} item {j + 1}", item


def _check_expansion(doc: Any, where: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_ALIAS_NODES extra nodes, or that
    refers to itself (`&a [*a]`). Linear in the document's own nodes: sizes are memoized."""
    sizes: dict[int, int] = {}
    unique = 0
    stack: list[tuple[Any, bool]] = [(doc, False)]
    open_ids: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        ident = id(node)
        children = list(node.keys()) + list(node.values()) if isinstance(node, dict) else node
        if children_done:
            open_ids.discard(ident)
            sizes[ident] = 1 + sum(sizes.get(id(c), 1) for c in children)
            continue
        if ident in sizes:
            continue
        if ident in open_ids:
            raise SourceError(f"{where}: an alias refers to the node that contains it")
        unique += 1
        open_ids.add(ident)
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, (dict, list)))
    if sizes.get(id(doc), 1) - unique > MAX_ALIAS_NODES:
        raise SourceError(f"{where}: YAML aliases expand to {sizes[id(doc)]} nodes (at most "
                          f"{MAX_ALIAS_NODES} more than the document's own {unique} are allowed)")


def load_snapshot(path: str | Path) -> Snapshot:
    """Validate and parse every object; raise InvalidObjects listing every invalid one."""
    errors: list[ValidationError] = []
    snap = snapshot_from_sources(list(read_manifests(path)), errors)
    if errors:
        raise InvalidObjects(errors)
    return snap
