"""vegd's controller running in the test process against the in-process API server and a real
NB/SB/northd; and `vegd run` as a separate process for the high-availability tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import yaml

from vegd.config import Settings
from vegd.controller.manager import Controller
from vegd.kube.api import KubeApi
from vegd.kube.resources import WATCHED
from vegd.nb.client import NbClient, SbClient, lock_name
from vegd.run import build_controller

GATEWAY_IMAGE = "registry.example/vegd:test"


class InProcessController:
    def __init__(self, kubeapi: Any, ovn: Any, resources: tuple[Any, ...] = WATCHED,
                 **overrides: Any) -> None:
        self.settings = Settings(nb_connection=ovn.nb_unix, sb_connection=ovn.sb_unix,
                                 gateway_image=GATEWAY_IMAGE, health_port=0,
                                 resync_period=overrides.pop("resync_period", 300.0))
        for key, value in overrides.items():
            setattr(self.settings, key, value)
        lock = lock_name(self.settings.vendor) if self.settings.leader_election else ""
        self.kube = KubeApi(kubeapi.configuration())
        self.nb = NbClient(ovn.nb_unix, 10.0, lock=lock)
        self.sb = SbClient(ovn.sb_unix, 10.0)
        self.controller: Controller = build_controller(self.settings, self.kube, self.nb, self.sb,
                                                       resources)
        self.thread = threading.Thread(target=self.controller.run, daemon=True,
                                       name="vegd-controller")

    def start(self) -> InProcessController:
        self.thread.start()
        return self

    @property
    def stats(self) -> Any:
        return self.controller.stats

    def idle(self) -> bool:
        """Nothing queued and nothing being reconciled (after at least one resync)."""
        c = self.controller
        return c.stats.resyncs > 0 and len(c.queue) == 0 and not c.busy

    def stop(self) -> None:
        self.controller.stop()
        self.thread.join(timeout=10)
        self.nb.close()
        self.sb.close()
        self.kube.close()


def write_kubeconfig(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


class VegdProcess:
    """`vegd run --config FILE` as a child process; ended by pid."""

    def __init__(self, workdir: Path, name: str, kubeconfig: Path, ovn: Any,
                 health_port: int = 0) -> None:
        self.name = name
        self.config = workdir / f"{name}.conf"
        self.config.write_text(
            "[ovn]\n"
            f"nb_connection = {ovn.nb_unix}\nsb_connection = {ovn.sb_unix}\n"
            "[vegd]\nlog_format = json\nlog_level = info\n"
            f"health_port = {health_port}\n"
            f"[kubernetes]\nkubeconfig = {kubeconfig}\nresync_period = 300\n"
            f"gateway_image = {GATEWAY_IMAGE}\n"
            "[leader_election]\nenabled = true\n")
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VegdProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VEGD_", "OVN_"))}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "vegd", "run", "--config",
                                          str(self.config)], stdout=out, stderr=out, env=env)
        return self

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
