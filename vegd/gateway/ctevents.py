"""Conntrack events of this network namespace, read from ctnetlink.

The socket is a plain AF_NETLINK socket subscribed to the NEW and DESTROY groups, so that a
full receive buffer surfaces as ENOBUFS (counted by the caller: events were lost) instead of
being hidden inside a library's receive loop.

Two decoders give the same events: `decode` walks the few attributes a record needs with
`struct` (about ten times faster: it decides how many new connections per second one agent
records), and `decode_pyroute2` uses pyroute2's maintained ctnetlink parser (`nfct_msg`). The
netns test checks that both agree on real kernel messages. See docs/decisions.md.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_CTNETLINK  # type: ignore[import-untyped]
from pyroute2.netlink.nfnetlink.nfctsocket import (  # type: ignore[import-untyped]
    IPCTNL_MSG_CT_DELETE,
    IPCTNL_MSG_CT_NEW,
    nfct_msg,
)

NETLINK_NETFILTER = 12
NFNLGRP_CONNTRACK_NEW = 1
NFNLGRP_CONNTRACK_DESTROY = 3
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33
NLMSG_HDR = struct.Struct("=IHHII")
NLMSG_ERROR, NLMSG_DONE = 2, 3
IPS_SRC_NAT, IPS_DST_NAT = 1 << 4, 1 << 5
PROTOCOLS = {6: "tcp", 17: "udp", 132: "sctp", 1: "icmp", 58: "icmpv6"}


@dataclass(frozen=True)
class Endpoint:
    source: str
    source_port: int | None
    destination: str
    destination_port: int | None


@dataclass(frozen=True)
class Counters:
    packets: int
    bytes: int


@dataclass(frozen=True)
class CtEvent:
    """One NEW ("start") or DESTROY ("end") event of a conntrack entry."""

    event: str  # start | end
    conntrack_id: int
    zone: int
    family: str  # ipv4 | ipv6
    protocol: str
    original: Endpoint
    reply: Endpoint
    counters_original: Counters | None = None
    counters_reply: Counters | None = None
    # when the kernel created the entry (ns since the epoch), with nf_conntrack_timestamp on; in
    # table dumps and DESTROY events only
    started_ns: int | None = None

    @property
    def nat_type(self) -> str | None:
        """snat, dnat, snat_dnat, or None when the reply tuple is the original one reversed."""
        src = (self.reply.destination, self.reply.destination_port) != \
            (self.original.source, self.original.source_port)
        dst = (self.reply.source, self.reply.source_port) != \
            (self.original.destination, self.original.destination_port)
        return {(True, False): "snat", (False, True): "dnat",
                (True, True): "snat_dnat"}.get((src, dst))

    @property
    def translated(self) -> Endpoint:
        """The original direction's packets after translation: the reply tuple reversed."""
        r = self.reply
        return Endpoint(r.destination, r.destination_port, r.source, r.source_port)


class EventSocket:
    """Blocking reader of ctnetlink NEW/DESTROY events; `recv` raises OSError(ENOBUFS) after
    the kernel had to drop events because the receive buffer was full."""

    def __init__(self, rcvbuf: int = 8 << 20, timeout: float = 0.5) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)  # CAP_NET_ADMIN
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((0, 0))
        for group in (NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group)
        self.sock.settimeout(timeout)

    def close(self) -> None:
        self.sock.close()

    def recv(self) -> bytes | None:
        """One datagram, or None after the timeout."""
        try:
            return self.sock.recv(1 << 20)
        except TimeoutError:
            return None
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EINTR):
                return None
            raise


def _endpoint(tuple_attr: nfct_msg.cta_tuple | None) -> Endpoint | None:
    if tuple_attr is None:
        return None
    ip = tuple_attr.get_attr("CTA_TUPLE_IP")
    proto = tuple_attr.get_attr("CTA_TUPLE_PROTO")
    if ip is None or proto is None:
        return None
    src = ip.get_attr("CTA_IP_V4_SRC") or ip.get_attr("CTA_IP_V6_SRC")
    dst = ip.get_attr("CTA_IP_V4_DST") or ip.get_attr("CTA_IP_V6_DST")
    if src is None or dst is None:
        return None
    return Endpoint(str(ipaddress.ip_address(src)), proto.get_attr("CTA_PROTO_SRC_PORT"),
                    str(ipaddress.ip_address(dst)), proto.get_attr("CTA_PROTO_DST_PORT"))


def _counters(attr: object) -> Counters | None:
    if attr is None:
        return None
    packets, count = attr.get_attr("CTA_COUNTERS_PACKETS"), attr.get_attr("CTA_COUNTERS_BYTES")  # type: ignore[attr-defined]
    return None if packets is None or count is None else Counters(packets, count)


# ctnetlink attribute numbers (linux/netfilter/nfnetlink_conntrack.h)
CTA_TUPLE_ORIG, CTA_TUPLE_REPLY, CTA_COUNTERS_ORIG, CTA_COUNTERS_REPLY = 1, 2, 9, 10
CTA_ID, CTA_ZONE, CTA_TIMESTAMP = 12, 18, 20
CTA_TIMESTAMP_START = 1
CTA_TUPLE_IP, CTA_TUPLE_PROTO = 1, 2
CTA_IP_V4_SRC, CTA_IP_V4_DST, CTA_IP_V6_SRC, CTA_IP_V6_DST = 1, 2, 3, 4
CTA_PROTO_NUM, CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT = 1, 2, 3
CTA_COUNTERS_PACKETS, CTA_COUNTERS_BYTES = 1, 2
NLA_TYPE_MASK = 0x3FFF
NLA_HDR = struct.Struct("=HH")
NFGENMSG = 4


def _attrs(data: bytes, start: int, end: int) -> dict[int, tuple[int, int]]:
    """Attribute type -> (payload start, payload end) of one nesting level."""
    out = {}
    while start + 4 <= end:
        length, kind = NLA_HDR.unpack_from(data, start)
        if length < 4:
            break
        out[kind & NLA_TYPE_MASK] = (start + 4, start + length)
        start += (length + 3) & ~3
    return out


def _fast_endpoint(data: bytes, span: tuple[int, int] | None
                   ) -> tuple[Endpoint, int] | None:
    if span is None:
        return None
    tup = _attrs(data, *span)
    if CTA_TUPLE_IP not in tup or CTA_TUPLE_PROTO not in tup:
        return None
    ip = _attrs(data, *tup[CTA_TUPLE_IP])
    proto = _attrs(data, *tup[CTA_TUPLE_PROTO])
    if CTA_IP_V4_SRC in ip and CTA_IP_V4_DST in ip:
        src, dst, size = ip[CTA_IP_V4_SRC], ip[CTA_IP_V4_DST], 4
    elif CTA_IP_V6_SRC in ip and CTA_IP_V6_DST in ip:
        src, dst, size = ip[CTA_IP_V6_SRC], ip[CTA_IP_V6_DST], 16
    else:
        return None
    ports = []
    for key in (CTA_PROTO_SRC_PORT, CTA_PROTO_DST_PORT):
        ports.append(struct.unpack_from("!H", data, proto[key][0])[0] if key in proto else None)
    number = data[proto[CTA_PROTO_NUM][0]] if CTA_PROTO_NUM in proto else -1
    return Endpoint(str(ipaddress.ip_address(data[src[0]:src[0] + size])), ports[0],
                    str(ipaddress.ip_address(data[dst[0]:dst[0] + size])), ports[1]), number


def _fast_counters(data: bytes, span: tuple[int, int] | None) -> Counters | None:
    if span is None:
        return None
    c = _attrs(data, *span)
    if CTA_COUNTERS_PACKETS not in c or CTA_COUNTERS_BYTES not in c:
        return None
    return Counters(struct.unpack_from("!Q", data, c[CTA_COUNTERS_PACKETS][0])[0],
                    struct.unpack_from("!Q", data, c[CTA_COUNTERS_BYTES][0])[0])


def _messages(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(ctnetlink message kind, start, end) of each NEW/DELETE message of a datagram."""
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size:
            break
        start, offset = offset, offset + ((length + 3) & ~3)
        kind = msg_type & 0xFF
        if msg_type >> 8 == NFNL_SUBSYS_CTNETLINK and kind in (IPCTNL_MSG_CT_NEW,
                                                                IPCTNL_MSG_CT_DELETE):
            yield kind, start, start + length


def decode(data: bytes) -> Iterator[CtEvent]:
    """The NEW and DESTROY events of one datagram; other messages are skipped."""
    for kind, start, end in _messages(data):
        body = start + NLMSG_HDR.size
        attrs = _attrs(data, body + NFGENMSG, end)
        original = _fast_endpoint(data, attrs.get(CTA_TUPLE_ORIG))
        reply = _fast_endpoint(data, attrs.get(CTA_TUPLE_REPLY))
        if original is None or reply is None:
            continue
        cid = struct.unpack_from("!I", data, attrs[CTA_ID][0])[0] if CTA_ID in attrs else 0
        started = None
        if CTA_TIMESTAMP in attrs:
            stamp = _attrs(data, *attrs[CTA_TIMESTAMP])
            if CTA_TIMESTAMP_START in stamp:
                started = struct.unpack_from("!Q", data, stamp[CTA_TIMESTAMP_START][0])[0]
        zone = struct.unpack_from("!H", data, attrs[CTA_ZONE][0])[0] if CTA_ZONE in attrs else 0
        yield CtEvent(
            event="start" if kind == IPCTNL_MSG_CT_NEW else "end", conntrack_id=cid,
            zone=zone, family="ipv6" if data[body] == socket.AF_INET6 else "ipv4",
            protocol=PROTOCOLS.get(original[1], "other"), original=original[0],
            reply=reply[0],
            counters_original=_fast_counters(data, attrs.get(CTA_COUNTERS_ORIG)),
            counters_reply=_fast_counters(data, attrs.get(CTA_COUNTERS_REPLY)),
            started_ns=started)


def decode_pyroute2(data: bytes) -> Iterator[CtEvent]:
    """`decode` by pyroute2's parser (slower; the reference the tests compare with)."""
    for kind, start, end in _messages(data):
        msg = nfct_msg(data[start:end])
        msg.decode()
        original = _endpoint(msg.get_attr("CTA_TUPLE_ORIG"))
        reply = _endpoint(msg.get_attr("CTA_TUPLE_REPLY"))
        if original is None or reply is None:
            continue
        proto = msg.get_attr("CTA_TUPLE_ORIG").get_attr("CTA_TUPLE_PROTO")
        number = proto.get_attr("CTA_PROTO_NUM")
        yield CtEvent(
            event="start" if kind == IPCTNL_MSG_CT_NEW else "end",
            conntrack_id=int(msg.get_attr("CTA_ID") or 0),
            zone=int(msg.get_attr("CTA_ZONE") or 0),
            family="ipv6" if msg["nfgen_family"] == socket.AF_INET6 else "ipv4",
            protocol=PROTOCOLS.get(number, "other"),
            original=original, reply=reply,
            counters_original=_counters(msg.get_attr("CTA_COUNTERS_ORIG")),
            counters_reply=_counters(msg.get_attr("CTA_COUNTERS_REPLY")),
            started_ns=_started(msg.get_attr("CTA_TIMESTAMP")))


def _started(attr: object) -> int | None:
    return None if attr is None else attr.get_attr("CTA_TIMESTAMP_START")  # type: ignore[attr-defined]


NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
IPCTNL_MSG_CT_GET = 1


def dump(timeout: float = 10.0) -> Iterator[CtEvent]:
    """Every entry of this namespace's conntrack table (both families), as `start` events
    without counters: what the agent re-reads after an overrun lost events."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.settimeout(timeout)
        sock.bind((0, 0))
        request = NLMSG_HDR.pack(NLMSG_HDR.size + NFGENMSG,
                                 (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                                 NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + bytes(NFGENMSG)
        sock.send(request)
        while True:
            data = sock.recv(1 << 20)
            offset, done = 0, False
            while offset + NLMSG_HDR.size <= len(data):
                length, msg_type = NLMSG_HDR.unpack_from(data, offset)[:2]
                if msg_type in (NLMSG_DONE, NLMSG_ERROR):
                    done = True
                    break
                offset += (length + 3) & ~3 or len(data)
            for event in decode(data):
                yield CtEvent(**{**event.__dict__, "counters_original": None,
                                 "counters_reply": None})
            if done:
                return
    finally:
        sock.close()
