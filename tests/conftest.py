"""Shared fixtures: a private OVN control plane per test session, and helpers."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent / "functional"))

import ovnbuild
from ovnstack import OvnStack, have_ovn


def pytest_configure(config):
    # before anything looks for a binary: VEGD_OVN puts another OVN build first on PATH
    try:
        config.ovn_bindir = ovnbuild.select_build()
    except RuntimeError as e:
        raise pytest.UsageError(str(e)) from e


def pytest_report_header(config):
    found = ", ".join(f"{k} {v}" for k, v in ovnbuild.versions().items()) or "none found"
    where = config.ovn_bindir or "the host's"
    return f"OVN build (VEGD_OVN={os.environ.get('VEGD_OVN', 'host')}): {found}; binaries: {where}"


def pytest_collection_modifyitems(config, items):
    root = os.geteuid() == 0
    for item in items:
        if "netns" in item.keywords and not root:
            item.add_marker(pytest.mark.skip(reason="needs root for network namespaces"))


@pytest.fixture(scope="session")
def ovn_session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ovn")


@pytest.fixture(scope="session")
def ovn(ovn_session_dir):
    """One NB + SB + northd for the whole session; tests use distinct router names."""
    if not have_ovn():
        pytest.skip("OVN (ovn-central) is not installed")
    stack = OvnStack(ovn_session_dir).start()
    yield stack
    stack.stop()


@pytest.fixture
def fresh_ovn(tmp_path):
    """A private NB + SB + northd for one test (about 60 ms to start)."""
    if not have_ovn():
        pytest.skip("OVN (ovn-central) is not installed")
    stack = OvnStack(tmp_path / "ovn").start()
    yield stack
    stack.stop()
