"""TCP clients for e2e tests, run inside a pod namespace with Debian's python3 (fast start).

``connects DST PORT COUNT TIMEOUT [BIND]``: COUNT sequential connections (each a new source
port, so a new ECMP hash); prints a JSON list of results: the address the server echoed (which
gateway SNATed the flow) or "fail:<reason>".

``probe DST PORT DURATION INTERVAL TIMEOUT``: a new non-blocking connection every INTERVAL
seconds for DURATION seconds, each given TIMEOUT to connect and answer; prints one JSON line
per connection: {"t": start, "e": end (epoch seconds), "r": result}.
"""

import json
import selectors
import socket
import sys
import time


def family(dst: str) -> int:
    return socket.AF_INET6 if ":" in dst else socket.AF_INET


def connects(dst: str, port: int, count: int, timeout: float, bind: str | None) -> list[str]:
    out = []
    for _ in range(count):
        s = socket.socket(family(dst), socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            if bind:
                s.bind((bind, 0))
            s.connect((dst, port))
            out.append(s.recv(128).decode() or "fail:empty")
        except OSError as e:
            out.append(f"fail:{type(e).__name__}")
        finally:
            s.close()
    return out


def probe(dst: str, port: int, duration: float, interval: float, timeout: float) -> None:
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, list[float]] = {}   # sock -> [start, connected?]

    def done(s: socket.socket, result: str) -> None:
        start = pending.pop(s)[0]
        sel.unregister(s)
        s.close()
        print(json.dumps({"t": start, "e": time.time(), "r": result}), flush=True)

    end = time.time() + duration
    nxt = time.time()
    while time.time() < end or pending:
        now = time.time()
        if nxt <= now < end:
            s = socket.socket(family(dst), socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((dst, port))          # EINPROGRESS; the selector reports the outcome
            pending[s] = [now, 0.0]
            sel.register(s, selectors.EVENT_WRITE)
            nxt += interval
        for key, _ in sel.select(max(0.0, min(nxt - now, 0.005))):
            s = key.fileobj  # type: ignore[assignment]
            if not pending[s][1]:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    done(s, f"fail:errno{err}")
                else:
                    pending[s][1] = 1.0
                    sel.modify(s, selectors.EVENT_READ)
            else:
                try:
                    data = s.recv(128).decode()
                except OSError as e:
                    data = f"fail:{type(e).__name__}"
                done(s, data or "fail:empty")
        for s, (start, connected) in list(pending.items()):
            if time.time() - start > timeout:  # which leg: the handshake, or the echo after it
                done(s, "fail:timeout-echo" if connected else "fail:timeout-connect")


if __name__ == "__main__":
    mode, dst, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "connects":
        bind = sys.argv[6] if len(sys.argv) > 6 else None
        print(json.dumps(connects(dst, port, int(sys.argv[4]), float(sys.argv[5]), bind)))
    elif mode == "probe":
        probe(dst, port, float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(f"unknown mode {mode}")
