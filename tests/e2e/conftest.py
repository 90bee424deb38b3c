"""Fixtures for the end-to-end data-plane tests (root, netns, OVS userspace datapath)."""

from __future__ import annotations

import os

import pytest
from ovnstack import OvnStack

from .dataplane import DataPlane, missing_binaries
from .rows import WRITERS


@pytest.fixture
def dataplane(tmp_path):
    """A private NB/SB/northd + OVS + ovn-controller for one test; everything is torn down
    afterwards (daemons by pid, namespaces), whether the test passed or not."""
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    missing = missing_binaries()
    if missing:
        pytest.skip(f"missing binaries: {', '.join(missing)}")
    stack = OvnStack(tmp_path / "ovn")
    dp = None
    try:
        stack.start()
        dp = DataPlane(stack)
        dp.start()
        print(f"\ndata plane {dp.prefix} up in {dp.started_in * 1000:.0f} ms (dir {stack.dir})")
        yield dp
    finally:
        if dp is not None:
            dp.stop()
        stack.stop()


@pytest.fixture
def egress_rows():
    """The pluggable rows step: VEGD_E2E_ROWS=hand (default) writes NB rows with ovn-nbctl."""
    kind = os.environ.get("VEGD_E2E_ROWS", "hand")
    if kind not in WRITERS:
        pytest.fail(f"VEGD_E2E_ROWS={kind}: unknown rows writer (have {sorted(WRITERS)})")
    return WRITERS[kind]()
