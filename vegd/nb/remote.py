"""OVSDB remotes as OVN writes them: `unix:PATH`, `tcp:IP:PORT`, `ssl:IP:PORT`, comma-separated
members of a clustered database (the IDL follows the leader)."""

from __future__ import annotations

import errno
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import ovs.db.idl
import ovs.jsonrpc
import ovs.poller
import ovs.stream
import ovs.timeval

from vegd.nb.errors import NbUnavailable

_KINDS = ("unix:", "tcp:", "ssl:")


@dataclass(frozen=True)
class SslFiles:
    private_key: str = ""
    certificate: str = ""
    ca_cert: str = ""


def members(remote: str) -> list[str]:
    out = [m.strip() for m in remote.split(",") if m.strip()]
    if not out:
        raise ValueError("empty OVSDB connection string")
    for m in out:
        if not m.startswith(_KINDS):
            raise ValueError(f"{m!r} is not an OVSDB remote "
                             "(unix:PATH, tcp:IP:PORT or ssl:IP:PORT)")
    return out


def configure_ssl(remote: str, ssl: SslFiles | None) -> None:
    if not any(m.startswith("ssl:") for m in members(remote)):
        return
    if ssl is None or not (ssl.private_key and ssl.certificate and ssl.ca_cert):
        raise ValueError(f"{remote}: ssl: needs a private key, a certificate and a CA certificate")
    for path in (ssl.private_key, ssl.certificate, ssl.ca_cert):
        if not os.access(path, os.R_OK):
            raise ValueError(f"cannot read {path}")
    _check_ssl_files(ssl)
    ovs.stream.Stream.ssl_set_private_key_file(ssl.private_key)
    ovs.stream.Stream.ssl_set_certificate_file(ssl.certificate)
    ovs.stream.Stream.ssl_set_ca_cert_file(ssl.ca_cert)


def _check_ssl_files(ssl_files: SslFiles) -> None:
    """Load the files as python-ovs will (ovs.stream.SSLStream._open), so a key that does not
    match the certificate, or a certificate given as the key, is refused with a message now
    instead of an ssl.SSLError traceback at the first connection."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(ssl_files.ca_cert)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"CA certificate {ssl_files.ca_cert}: not a PEM certificate "
                         f"({exc})") from None
    try:
        ctx.load_cert_chain(ssl_files.certificate, ssl_files.private_key)
    except (ssl.SSLError, OSError) as exc:
        why = ("the private key does not match the certificate"
               if getattr(exc, "reason", "") == "KEY_VALUES_MISMATCH" else
               "cannot load them as a PEM certificate and its private key")
        raise ValueError(f"certificate {ssl_files.certificate}, private key "
                         f"{ssl_files.private_key}: {why} ({exc})") from None


def fetch_schema(remote: str, schema: str, timeout: float) -> Any:
    """The schema JSON from the first member that answers within timeout seconds."""
    failures = []
    for member in members(remote):
        error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(member),
                                                     int(timeout * 1000))
        if error or stream is None:
            failures.append(f"{member}: {os.strerror(error) if error else 'no connection'}")
            continue
        rpc = ovs.jsonrpc.Connection(stream)
        try:
            request = ovs.jsonrpc.Message.create_request("get_schema", [schema])
            error, reply = _transact(rpc, request, timeout)
        finally:
            rpc.close()
        if error:
            failures.append(f"{member}: {os.strerror(error)}")
        elif reply.error:
            failures.append(f"{member}: {reply.error}")
        else:
            return reply.result
    raise NbUnavailable(f"cannot read the {schema} schema: {'; '.join(failures)}")


def _transact(rpc: ovs.jsonrpc.Connection, request: Any, timeout: float) -> tuple[int, Any]:
    """jsonrpc transact_block with a deadline (python-ovs' own waits forever)."""
    deadline = ovs.timeval.msec() + int(timeout * 1000)
    error = rpc.send(request)
    while not error:
        error, reply = rpc.recv()
        if error == errno.EAGAIN:
            if ovs.timeval.msec() > deadline:
                return errno.ETIMEDOUT, None
            poller = ovs.poller.Poller()
            rpc.run()
            rpc.wait(poller)
            rpc.recv_wait(poller)
            poller.timer_wait(100)
            poller.block()
            error = 0
            continue
        if error == 0 and reply is not None and reply.id == request.id:
            return 0, reply
    return error, None


def schema_helper(schema_json: Any, tables: tuple[str, ...],
                  columns: Mapping[str, list[str]] | None = None) -> ovs.db.idl.SchemaHelper:
    """Replicate `tables` whole and, of the other tables in `columns`, only those columns (a
    table asked for whole stays whole: python-ovs would narrow it to the columns)."""
    helper = ovs.db.idl.SchemaHelper(schema_json=schema_json)
    present = schema_json["tables"]
    for table in tables:
        if table in present:
            helper.register_table(table)
    for table, names in (columns or {}).items():
        if table in present and table not in tables:
            helper.register_columns(table, names)
    return helper
