"""Kubernetes Events (core/v1), the way `kubectl describe` shows them."""

from __future__ import annotations

import os
import secrets
import socket

import structlog

from vegd.kube.api import KubeApi, KubeError, Obj

log = structlog.get_logger("vegd.kube")


class EventRecorder:
    def __init__(self, api: KubeApi, component: str = "vegd", instance: str = "") -> None:
        self.api = api
        self.component = component
        # POD_NAME in the cluster (host network: the hostname is the node's), else the host
        self.instance = instance or os.environ.get("POD_NAME") or socket.gethostname()

    def emit(self, involved: Obj, type_: str, reason: str, message: str, now: str) -> None:
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name')}.{secrets.token_hex(8)}",
                         "namespace": namespace},
            "involvedObject": {"apiVersion": involved.get("apiVersion"),
                               "kind": involved.get("kind"), "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": type_, "reason": reason, "message": message[:1024],
            "source": {"component": self.component},
            "reportingComponent": self.component, "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            self.api.create_event(namespace, body)
        except KubeError as exc:  # an Event is best effort: never fail a reconcile for it
            log.warning("cannot record event", reason=reason, error=str(exc))
