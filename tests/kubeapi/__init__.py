"""An in-process Kubernetes API server for tests (see docs/kubeapi-test-server.md).

Import what you need from the modules (``kubeapi.fixture.KubeApi``, ``kubeapi.store.ApiError``);
this package deliberately imports nothing itself, so that ``pytest_plugins = ["kubeapi.fixture"]``
is the first import of the fixture module (pytest then rewrites its asserts without warning).
"""
