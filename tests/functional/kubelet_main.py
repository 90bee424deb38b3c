"""Run the simulated cluster (`kubelet.FakeCluster`: ReplicaSet controller, scheduler, kubelet,
Kube-OVN IPAM/CNI, Multus) as a process against an API server:
``python tests/functional/kubelet_main.py --server http://127.0.0.1:PORT``. Runs until SIGTERM
or SIGINT; ``--ready-file`` is created once every watch has listed."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from kubelet import FakeCluster
from kubernetes import client


class _Server:
    """What FakeCluster needs of its `kubeapi`: new ApiClients for one server URL."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api_client(self) -> client.ApiClient:
        cfg = client.Configuration()
        cfg.host = self.url
        return client.ApiClient(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    cluster = FakeCluster(_Server(args.server)).start(timeout=30)
    try:
        if args.ready_file:
            args.ready_file.touch()
        print(f"kubelet: simulating the cluster behind {args.server}", flush=True)
        stop.wait()
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
