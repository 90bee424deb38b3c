"""The OVN build the session runs against (VEGD_OVN, scripts/ovn-root): the daemons really are
that build's, and running them from another Debian root leaves nothing mounted on the host."""

from __future__ import annotations

import os
from pathlib import Path

import ovnbuild
import pytest

WANT = {"23.03": "23.03", "bookworm": "23.03", "25.03": "25.03", "trixie": "25.03"}


def _our_mounts() -> str:
    """The mount table of this process's (the test run's) mount namespace."""
    return Path("/proc/self/mounts").read_text()


def test_daemons_are_the_requested_build(fresh_ovn, pytestconfig):
    build = os.environ.get("VEGD_OVN", "host")
    northd = ovnbuild.versions()["ovn-northd"]
    if build in WANT:
        assert northd.startswith(WANT[build]), (build, northd)
    bindir = pytestconfig.ovn_bindir
    root = Path(bindir).parent / "root" if bindir else Path("/")
    # the running ovsdb-server and northd see that root as "/"
    for name in ("nb", "northd"):
        pid = fresh_ovn.pid(name)
        # (the same directory, not the same path text: a reader that is itself chrooted sees
        # another mount namespace's root by its path from the host's "/")
        seen, want = os.stat(f"/proc/{pid}/root"), root.stat()
        assert (seen.st_dev, seen.st_ino) == (want.st_dev, want.st_ino), name
    # the NB schema the server runs is the one that build ships
    served = fresh_ovn._run("ovsdb-client", "get-schema-version", fresh_ovn.nb_unix,
                            "OVN_Northbound").strip()
    shipped = (root / "usr/share/ovn/ovn-nb.ovsschema").read_text()
    assert f'"version": "{served}"' in shipped


def test_nothing_stays_mounted(tmp_path, pytestconfig):
    bindir = pytestconfig.ovn_bindir
    if not bindir:
        pytest.skip("the host's OVN: no root, no mounts")
    from ovnstack import OvnStack

    root = str(Path(bindir).parent / "root")
    assert root not in _our_mounts()
    stack = OvnStack(tmp_path / "ovn").start()
    try:
        stack.sync()
        # the wrappers' mounts live in each daemon's own mount namespace, not in ours
        assert root not in _our_mounts()
        for name in ("nb", "sb", "northd"):
            pid = stack.pid(name)
            assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    finally:
        stack.stop()
    assert root not in _our_mounts()
