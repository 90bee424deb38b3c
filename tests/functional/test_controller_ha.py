"""Two `vegd run` processes: exactly one writes; killing it hands over to the other."""

from __future__ import annotations

import gc
import time

import pytest
from kubernetes import client
from ovnstack import wait_for
from scenario import SEED, add_base_topology
from test_controller import GATEWAY1, Env
from vegd_harness import VegdProcess, write_kubeconfig

pytest_plugins = ["kubeapi.fixture", "kubelet"]

G, V, PLURAL = "kubeovn.io", "v1", "vpc-egress-gateways"
ACTIVE = "holding the NB lock: active"
STARTUP_OVER = "start-up over: full garbage collections resumed"


@pytest.fixture
def pair(fresh_ovn, kubeapi, fake_cluster, tmp_path):
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kubeapi.url)
    procs = [VegdProcess(tmp_path, name, kubeconfig, fresh_ovn) for name in ("a", "b")]
    try:
        yield Env(fresh_ovn, kubeapi, fake_cluster, None), procs
    finally:
        for proc in procs:
            proc.stop()


def test_one_active_and_the_standby_takes_over_within_5_s(pair):
    env, (a, b) = pair
    a.start()
    wait_for(lambda: ACTIVE in a.log_text(), 20, what="a active")
    b.start()
    wait_for(lambda: "caches synced" in b.log_text(), 20, what="b synced")
    env.create_gateway("gateway1", {**GATEWAY1, "replicas": 1})
    env.cluster.wait_pods("gateway1", 1, timeout=15)
    wait_for(lambda: len(env.policies().get("ip4.src == 10.16.0.0/16", ())) == 1, 10,
             what="a converged")
    assert ACTIVE not in b.log_text()  # one writer
    # both are ready, the standby too: neither defers full garbage collections any longer
    wait_for(lambda: all(STARTUP_OVER in p.log_text() for p in (a, b)), 10,
             what="start-up over in both")

    a.kill()  # SIGKILL: no goodbye, the connection just closes
    killed = time.monotonic()
    env.custom.patch_namespaced_custom_object_scale(G, V, "default", PLURAL, "gateway1",
                                                    {"spec": {"replicas": 2}})
    pods = env.cluster.wait_pods("gateway1", 2, timeout=5)
    ips = {p["status"]["podIP"] for p in pods}
    wait_for(lambda: env.policies().get("ip4.src == 10.16.0.0/16") == ips, 5,
             what="b converged within 5 s of the kill")
    took = time.monotonic() - killed
    assert ACTIVE in b.log_text()
    status = client.CustomObjectsApi(env.kubeapi.api_client()).get_namespaced_custom_object(
        G, V, "default", PLURAL, "gateway1")["status"]
    b.stop()
    assert b.proc.returncode == 0  # SIGTERM: a clean stop
    print(f"\nstandby converged {took * 1000:.0f} ms after the active vegd was killed "
          f"(including the new pod's start); status {status['phase']}")


def test_run_refuses_unusable_credentials_and_databases(tmp_path, capsys, fresh_ovn):
    from vegd.cli import main as vegd_main

    thresholds = gc.get_threshold()
    assert vegd_main(["run", "--kubeconfig", str(tmp_path / "missing"),
                      "--nb-connection", fresh_ovn.nb_unix, "--health-port", "0"]) == 2
    assert "cannot load Kubernetes credentials" in capsys.readouterr().err
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9")
    assert vegd_main(["run", "--kubeconfig", str(kubeconfig), "--nb-connection",
                      f"unix:{tmp_path}/no.sock", "--health-port", "0"]) == 2
    assert "OVN databases" in capsys.readouterr().err
    assert gc.get_threshold() == thresholds  # the start-up window (vegd/heap.py) is closed
