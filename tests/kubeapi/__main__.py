"""Run the test API server as a process: ``PYTHONPATH=tests python -m kubeapi``.

Serves on 127.0.0.1 until SIGTERM or SIGINT. ``--port-file`` receives the port once it serves
(written atomically, so a reader sees it whole); ``--crd FILE`` installs CRDs at start, like a
cluster that has them (none by default: ``kubectl apply -f deploy/crds/`` then registers them);
``--load FILE`` creates objects before it serves (the benchmarks' clusters); ``--sent-log FILE``
gets a line per watch event as it goes out (CLOCK_MONOTONIC seconds, kind, resourceVersion).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from pathlib import Path

from .fixture import KubeApi


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m kubeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path)
    parser.add_argument("--crd", type=Path, action="append", default=[])
    parser.add_argument("--load", type=Path, action="append", default=[],
                        help="create the objects of a JSON list (or YAML) file at start")
    parser.add_argument("--sent-log", type=Path,
                        help="a line per watch event sent: monotonic seconds, kind, rv")
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    api = KubeApi(crds=args.crd, port=args.port)
    for path in args.load:
        if path.suffix == ".json":
            api.create_all(json.loads(path.read_text()))
        else:
            api.load_yaml(path)
    if args.sent_log:
        api.server.sent_log = args.sent_log.open("w", buffering=1)
    try:
        if args.port_file:
            tmp = args.port_file.with_suffix(".tmp")
            tmp.write_text(f"{api.port}\n")
            os.replace(tmp, args.port_file)
        print(f"kubeapi: serving on {api.url}", flush=True)
        stop.wait()
    finally:
        api.close()
        if api.server.sent_log is not None:
            api.server.sent_log.close()


if __name__ == "__main__":
    main()
