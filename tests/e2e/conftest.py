"""Fixtures for the end-to-end data-plane tests (root, netns, OVS userspace datapath)."""

from __future__ import annotations

import os

import pytest
from ovnstack import OvnStack

from .controller_rows import ControllerRows
from .dataplane import DataPlane, missing_binaries
from .rows import DEFAULT_WRITER, WRITERS, VegdApplyRows


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
def egress_rows(tmp_path):
    """The pluggable rows step: VEGD_E2E_ROWS=vegd (default) runs `vegd apply -f DIR` on
    rendered manifests; VEGD_E2E_ROWS=controller puts them in the in-process API server for
    vegd's controller; VEGD_E2E_ROWS=hand writes the reference rows with ovn-nbctl."""
    kind = os.environ.get("VEGD_E2E_ROWS", DEFAULT_WRITER)
    if kind == "controller":
        writer = ControllerRows()
        yield writer
        writer.close()
        return
    if kind not in WRITERS:
        pytest.fail(f"VEGD_E2E_ROWS={kind}: unknown rows writer (have {sorted(WRITERS)} "
                    "and controller)")
    if kind == "vegd":
        yield VegdApplyRows(workdir=tmp_path / "manifests")
        return
    yield WRITERS[kind]()


@pytest.fixture
def controller_rows():
    """Always the controller: NB written by `vegd run`'s controller from API objects."""
    writer = ControllerRows()
    yield writer
    writer.close()


@pytest.fixture
def vegd_rows(tmp_path):
    """Always vegd's rows, whatever VEGD_E2E_ROWS says (scenarios that only make sense with
    the real planner: scaling by re-applying, pruning)."""
    return VegdApplyRows(workdir=tmp_path / "manifests")
