"""Fixtures for the gateway agent's tests: a namespace lab that always cleans up."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from nslab import Lab, Topology


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def topo(lab: Lab) -> Topology:
    return Topology(lab)
