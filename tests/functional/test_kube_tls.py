"""vegd's requests over HTTPS with the in-cluster credentials, as a Deployment makes them.

vegd sends its requests through the client's connection pool itself (vegd/kube/api.py), so the
production path — the service account's CA and bearer token, loaded by the client's in-cluster
loader — is tested here against the test API server serving HTTPS with its own CA."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from kubernetes import client
from kubernetes.config.incluster_config import InClusterConfigLoader
from ovnstack import wait_for

from vegd.kube.api import KubeApi, KubeError
from vegd.kube.resources import GATEWAYS, PODS

TOKEN = "vegd-in-cluster-token"


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(tmp_path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "1",
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=tmp_path)


@pytest.fixture
def https_api(tmp_path):
    """The test API server on HTTPS, its certificate for 127.0.0.1 signed by the CA `ca`."""
    _ca(tmp_path, "ca")
    _ca(tmp_path, "other-ca")
    (tmp_path / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver",
             cwd=tmp_path)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "server.ext",
             cwd=tmp_path)
    from kubeapi.fixture import KubeApi  # late: pytest_plugins loads the module

    api = KubeApi(tls=(str(tmp_path / "server.crt"), str(tmp_path / "server.key")))
    try:
        yield api
    finally:
        api.close()


def _in_cluster(tmp_path, monkeypatch, server, ca: str) -> client.Configuration:
    """What `load_incluster_config` makes in a pod: the service's address from the
    environment, the token and CA from the service account's files (here in tmp_path)."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    (tmp_path / "token").write_text(TOKEN)
    cfg = client.Configuration()
    InClusterConfigLoader(token_filename=str(tmp_path / "token"),
                          cert_filename=str(tmp_path / ca)).load_and_set(cfg)
    return cfg


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}


def test_lists_watches_and_writes_over_https_with_the_service_account(
        https_api, tmp_path, monkeypatch):
    https_api.create(_pod("p1"))
    api = KubeApi(_in_cluster(tmp_path, monkeypatch, https_api, "ca.crt"))
    try:
        page = api.list(PODS)
        assert [p["metadata"]["name"] for p in page["items"]] == ["p1"]
        resp, events = api.watch(PODS, page["metadata"]["resourceVersion"], 30)
        try:
            https_api.create(_pod("p2"))
            event = next(e for e in events if e["type"] != "BOOKMARK")
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "p2")
        finally:
            resp.close()
        api.create_event("default", {"metadata": {"name": "e1"}, "reason": "Test",
                                     "involvedObject": {"kind": "Pod", "namespace": "default",
                                                        "name": "p1"}})
        with pytest.raises(KubeError) as missing:
            api.get_custom(GATEWAYS, "default", "nope")
        assert missing.value.not_found
    finally:
        api.close()
    auths = {auth.lower() for _, _, _, auth in https_api.requests()}
    assert auths == {f"bearer {TOKEN}"}  # the scheme is case-insensitive


def test_a_server_certificate_of_another_ca_is_refused(https_api, tmp_path, monkeypatch):
    api = KubeApi(_in_cluster(tmp_path, monkeypatch, https_api, "other-ca.crt"),
                  request_timeout=5)
    try:
        with pytest.raises(KubeError) as refused:
            api.list(PODS)
    finally:
        api.close()
    assert refused.value.transient  # no answer: retried with backoff, the error logged
    assert "certificate verify failed" in str(refused.value)
    assert not https_api.requests()  # nothing reached the server's handlers


@pytest.mark.skipif(shutil.which("kubectl") is None,
                    reason="kubectl is missing (scripts/setup installs Debian 13's "
                           "kubernetes-client; Debian 12's is too old)")
def test_kubectl_trusts_the_test_servers_certificate(https_api, tmp_path):
    """The HTTPS test server is the real thing for a Go client too."""
    https_api.create(_pod("p1"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": https_api.url,
                                               "certificate-authority": str(tmp_path / "ca.crt")}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "u"}}]}))
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "pods", "-o",
                          "name"], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, "pod/p1"), out.stderr
    wait_for(lambda: any(a == f"Bearer {TOKEN}" for *_, a in https_api.requests()), 5,
             what="kubectl's request with the token")
