"""An in-process Kubernetes API server for tests (see docs/kubeapi-test-server.md)."""

from .fixture import KubeApi, kubeapi
from .store import ApiError, Store

__all__ = ["ApiError", "KubeApi", "Store", "kubeapi"]
