"""Docs match the code: every vegd metric a process exports is in docs/operating.md's tables."""

from __future__ import annotations

import re
from pathlib import Path

OPERATING = Path(__file__).resolve().parents[1] / "docs" / "operating.md"


def assert_documented(samples: dict) -> None:
    doc = OPERATING.read_text()
    names = {re.sub(r"_(bucket|count|sum)$", "", name) for name, _ in samples
             if name.startswith("vegd_") and not name.endswith("_created")}
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert names and not missing, f"not in docs/operating.md: {missing}"
