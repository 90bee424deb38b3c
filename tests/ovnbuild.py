"""Which OVN build the tests and benchmarks run against: ``VEGD_OVN`` (scripts/ovn-root).

``VEGD_OVN`` unset or ``host``: the host's binaries. ``23.03``/``bookworm`` or ``25.03``/``trixie``:
that Debian release's OVN, from a cached root (scripts/ovn-root builds it and prints a bin dir of
wrappers, which goes first on PATH for this process and everything it starts). The versions the
tests report are read from the binaries, never assumed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OVN_ROOT_SCRIPT = ROOT / "scripts" / "ovn-root"


def select_build(build: str | None = None) -> str:
    """Put the requested build's wrappers first on PATH; return the bin dir ("" for the host's).
    Raises RuntimeError when the build cannot be provided."""
    build = build if build is not None else os.environ.get("VEGD_OVN", "")
    if build in ("", "host"):
        return ""
    proc = subprocess.run(["bash", str(OVN_ROOT_SCRIPT), build], capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"VEGD_OVN={build}: {proc.stderr.strip() or 'scripts/ovn-root failed'}")
    bindir = proc.stdout.strip()
    if bindir:
        path = os.environ.get("PATH", "").split(os.pathsep)
        if bindir not in path:
            os.environ["PATH"] = os.pathsep.join([bindir, *path])
    return bindir


def versions() -> dict[str, str]:
    """Versions as the binaries on PATH report them (missing ones are left out)."""
    out: dict[str, str] = {}
    for name in ("ovn-northd", "ovn-controller", "ovsdb-server", "ovs-vswitchd"):
        try:
            text = subprocess.run([name, "--version"], capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        match = re.search(r"\s(\d+\.\d+\.\d+\S*)", text.splitlines()[0] if text else "")
        if match:
            out[name] = match.group(1)
    return out


def require_policy_bfd_sessions(nb_remote: str) -> None:
    """Skip the calling test where the NB schema has no Logical_Router_Policy.bfd_sessions
    (OVN 23.03: no policy mode). Where ovn-northd is 24.03 or newer it must have the column:
    fail rather than skip there, so policy mode is really exercised on 25.03."""
    import pytest

    proc = subprocess.run(["ovsdb-client", "get-schema", nb_remote, "OVN_Northbound"],
                          capture_output=True, text=True, timeout=30, check=True)
    schema = json.loads(proc.stdout)
    if "bfd_sessions" in schema["tables"]["Logical_Router_Policy"]["columns"]:
        return
    if ovn_version() >= (24, 3):
        pytest.fail(f"ovn-northd {versions()['ovn-northd']} with NB schema {schema['version']} "
                    "lacks Logical_Router_Policy.bfd_sessions")
    pytest.skip(f"NB schema {schema['version']} has no Logical_Router_Policy.bfd_sessions "
                "(policy mode needs OVN 24.03+)")


def ovn_version() -> tuple[int, int]:
    """(major, minor) of the ovn-northd on PATH, e.g. (25, 3)."""
    v = versions().get("ovn-northd", "0.0")
    major, minor = v.split(".")[:2]
    return int(major), int(minor)
