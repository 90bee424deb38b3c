"""An ssl: NB remote, with certificates made by ovs-pki for this test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from ovnstack import NB_SCHEMA, stop_pid, wait_for
from scenario import BASE_TOPOLOGY, ROOT


@pytest.mark.skipif(not shutil.which("ovs-pki"), reason="ovs-pki is not installed")
def test_apply_over_ssl(tmp_path):
    pki = tmp_path / "pki"
    run = lambda *c, **kw: subprocess.run(c, check=True, capture_output=True, text=True,  # noqa: E731
                                          cwd=tmp_path, **kw)
    run("ovs-pki", f"--dir={pki}", "--force", "init")
    run("ovs-pki", f"--dir={pki}", "--force", "req+sign", "server", "switch")
    run("ovs-pki", f"--dir={pki}", "--force", "req+sign", "client", "switch")
    ca = pki / "switchca" / "cacert.pem"
    run("ovsdb-tool", "create", str(tmp_path / "nb.db"), NB_SCHEMA)
    run("ovsdb-server", str(tmp_path / "nb.db"), "--detach", "--no-chdir", "-vconsole:off",
        f"--pidfile={tmp_path}/nb.pid", f"--log-file={tmp_path}/nb.log",
        f"--unixctl={tmp_path}/nb.ctl", f"--remote=punix:{tmp_path}/nb.sock",
        "--remote=pssl:0:127.0.0.1", f"--private-key={tmp_path}/server-privkey.pem",
        f"--certificate={tmp_path}/server-cert.pem", f"--ca-cert={ca}")
    pid = int((tmp_path / "nb.pid").read_text())
    try:
        port = wait_for(lambda: re.findall(r": listening on port (\d+)",
                                           (tmp_path / "nb.log").read_text()), 5)[-1]
        run("bash", str(BASE_TOPOLOGY), f"unix:{tmp_path}/nb.sock")
        env = dict(os.environ, VEGD_SSL_PRIVATE_KEY=str(tmp_path / "client-privkey.pem"),
                   VEGD_SSL_CERTIFICATE=str(tmp_path / "client-cert.pem"),
                   VEGD_SSL_CA_CERT=str(ca))
        proc = subprocess.run(
            [sys.executable, "-m", "vegd", "apply", "-f", str(ROOT / "examples/seed"),
             "--nb-connection", f"ssl:127.0.0.1:{port}"],
            capture_output=True, text=True, cwd=ROOT, env=env)
        assert proc.returncode == 0, proc.stderr
        policies = run("ovn-nbctl", f"--db=unix:{tmp_path}/nb.sock", "lr-policy-list",
                       "ovn-cluster").stdout
        assert "10.16.0.12, 10.16.0.13" in policies
        # without the key material the remote is refused with a clear message
        env.pop("VEGD_SSL_PRIVATE_KEY")
        bad = subprocess.run([sys.executable, "-m", "vegd", "apply", "-f",
                              str(ROOT / "examples/seed"), "--nb-connection",
                              f"ssl:127.0.0.1:{port}"],
                             capture_output=True, text=True, cwd=ROOT, env=env)
        assert bad.returncode == 2
        assert "needs a private key" in bad.stderr
    finally:
        stop_pid(pid)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if not shutil.which("ovs-pki"):
        pytest.skip("ovs-pki is not installed")
    work = tmp_path_factory.mktemp("pki")
    for args in (("init",), ("req+sign", "server", "switch"), ("req+sign", "client", "switch")):
        subprocess.run(["ovs-pki", f"--dir={work / 'pki'}", "--force", *args], check=True,
                       capture_output=True, cwd=work)
    return work


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""

SSL_MISTAKES = {
    "key of another certificate": ("server-privkey.pem", "client-cert.pem",
                                   "the private key does not match the certificate"),
    "certificate given as key": ("client-cert.pem", "client-cert.pem",
                                 "cannot load them as a PEM certificate and its private key"),
    "key given as certificate": ("client-privkey.pem", "client-privkey.pem",
                                 "cannot load them as a PEM certificate and its private key"),
}


@pytest.mark.parametrize("command", ["apply", "run"])
@pytest.mark.parametrize("mistake", sorted(SSL_MISTAKES))
def test_bad_key_material_exits_2_with_a_message(pki, tmp_path, command, mistake):
    key, cert, message = SSL_MISTAKES[mistake]
    env = dict(os.environ, VEGD_SSL_PRIVATE_KEY=str(pki / key),
               VEGD_SSL_CERTIFICATE=str(pki / cert),
               VEGD_SSL_CA_CERT=str(pki / "pki" / "switchca" / "cacert.pem"))
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    args = (["apply", "-f", str(ROOT / "examples/seed")] if command == "apply"
            else ["run", "--kubeconfig", str(tmp_path / "kubeconfig"), "--health-port", "0"])
    proc = subprocess.run([sys.executable, "-m", "vegd", *args,
                           "--nb-connection", "ssl:127.0.0.1:1"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert str(pki / key) in proc.stderr
    assert "Traceback" not in proc.stderr
