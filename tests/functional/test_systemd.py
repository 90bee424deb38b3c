"""systemd/vegd.service: `systemd-analyze verify` passes, and the unit's own command line,
started with NOTIFY_SOCKET on a socket this test listens on, sends STATUS= lines, READY=1 only
once the first full resync has written NB, WATCHDOG=1 from the main loop, and STOPPING=1.

The unit runs /usr/local/bin/vegd, which verify requires to exist. The test does not install
anything on the host: it runs verify (and the command line) in a private mount namespace where
a directory holding a link to this checkout's vegd is bind-mounted over /usr/local/bin."""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ovnstack import wait_for
from scenario import SEED, add_base_topology
from vegd_harness import write_kubeconfig

pytest_plugins = ["kubeapi.fixture", "kubelet"]

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd/vegd.service"
VEGD = Path(sys.executable).parent / "vegd"  # the console script of this checkout's venv

needs_tools = pytest.mark.skipif(
    not shutil.which("systemd-analyze") or not shutil.which("unshare") or os.geteuid() != 0,
    reason="needs root, unshare and systemd-analyze (Debian package systemd)")


def exec_start() -> list[str]:
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(UNIT)
    return shlex.split(unit["Service"]["ExecStart"])


def in_mount_ns(tmp_path: Path, argv: list[str]) -> list[str]:
    """argv run where /usr/local/bin holds (only) a link to this checkout's vegd."""
    bindir = tmp_path / "usr-local-bin"
    bindir.mkdir(exist_ok=True)
    link = bindir / "vegd"
    if not link.exists():
        link.symlink_to(VEGD)
    script = 'mount --bind "$0" /usr/local/bin && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(bindir),
            *argv]


@needs_tools
def test_systemd_analyze_verify(tmp_path):
    result = subprocess.run(in_mount_ns(tmp_path, ["systemd-analyze", "verify", str(UNIT)]),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    assert exec_start()[0] == "/usr/local/bin/vegd"


@needs_tools
def test_unit_command_line_notifies_ready_after_the_first_resync(
        tmp_path, fresh_ovn, kubeapi, fake_cluster):
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    config = tmp_path / "vegd.conf"
    config.write_text(
        f"[ovn]\nnb_connection = {fresh_ovn.nb_unix}\nsb_connection = {fresh_ovn.sb_unix}\n"
        "[vegd]\nlog_format = json\nhealth_port = 0\n"
        f"[kubernetes]\nkubeconfig = {write_kubeconfig(tmp_path / 'kubeconfig', kubeapi.url)}\n")
    argv = exec_start()
    assert argv[1:] == ["run", "--config", "/etc/vegd/vegd.conf"]
    argv[-1] = str(config)  # the unit's command line, with the test's configuration file
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.5)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEGD_", "OVN_"))}
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="1000000")
    log = (tmp_path / "vegd.log").open("wb")
    proc = subprocess.Popen(in_mount_ns(tmp_path, argv), stdout=log, stderr=log, env=env)
    messages: list[str] = []

    def received(text: str) -> bool:
        with contextlib.suppress(TimeoutError):
            messages.append(notify.recv(4096).decode())
        return text in messages

    try:
        wait_for(lambda: received("READY=1") or proc.poll() is not None, 30, what="READY=1")
        assert proc.poll() is None, (tmp_path / "vegd.log").read_text()
        # at READY the first full resync has written NB: vpc1's rows are there, no waiting
        owned = {table: len(json.loads(fresh_ovn.nbctl(
            "--format=json", "find", table, "external_ids:vendor=vegd"))["data"])
            for table in ("BFD", "Logical_Router_Port", "Logical_Router_Policy")}
        assert owned["BFD"] and owned["Logical_Router_Port"], owned
        statuses = [m for m in messages if m.startswith("STATUS=")]
        assert statuses[0] == "STATUS=waiting for the Kubernetes caches" or \
            statuses[0].startswith("STATUS=waiting for the NB lock") or \
            statuses[0] == "STATUS=active: first full resync running"
        assert statuses[-1].startswith("STATUS=active: holds the NB lock vegd_vegd")
        assert messages.index("READY=1") > messages.index(statuses[-1])
        assert any("full resync completed" in line for line in
                   (tmp_path / "vegd.log").read_text().splitlines())
        start = time.monotonic()
        before = messages.count("WATCHDOG=1")
        wait_for(lambda: received("WATCHDOG=1") and messages.count("WATCHDOG=1") >= before + 2,
                 10, what="WATCHDOG=1 every WatchdogSec/2")
        assert time.monotonic() - start >= 0.5  # paced, not one per loop turn (0.1 s)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        wait_for(lambda: received("STOPPING=1"), 5, what="STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        notify.close()
        log.close()
