"""TCP server for e2e tests: answers every connection with the client's source address.

Run inside the "external" namespace: ``python3 echo_server.py ADDR PORT``. The address it replies
with is the one the server sees, i.e. the external IP of the gateway that SNATed the flow.
Threads keep a slow or dead client from blocking the others.
"""

import socket
import sys
import threading


def serve(addr: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    srv = socket.socket(family, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1024)
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=reply, args=(conn, peer[0]), daemon=True).start()


def reply(conn: socket.socket, peer: str) -> None:
    try:
        conn.settimeout(5)
        conn.sendall(peer.encode())
    except OSError:
        pass
    finally:
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
