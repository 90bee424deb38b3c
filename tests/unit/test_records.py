"""Translation records without a kernel: filters (include, exclude, tuples, ports), the token
bucket, the record's fields, rotation of the file, and the observer's accounting (every event
written or counted, late duplicates after a table re-read not recorded twice)."""

from __future__ import annotations

import io
import json

from prometheus_client import CollectorRegistry

from vegd.gateway import ctevents, records
from vegd.gateway.ctevents import Counters, CtEvent, Endpoint
from vegd.gateway.observer import Observer
from vegd.model.observability import parse_observability


def event(kind: str = "start", sport: int = 40000, dport: int = 443, cid: int = 7,
          proto: str = "tcp") -> CtEvent:
    return CtEvent(kind, cid, 0, "ipv4", proto,
                   Endpoint("10.16.0.5", sport, "203.0.113.10", dport),
                   Endpoint("203.0.113.10", dport, "172.17.0.2", 61000),
                   Counters(3, 300) if kind == "end" else None,
                   Counters(2, 2000) if kind == "end" else None)


def log_config(**spec):
    return parse_observability({"conntrack": {"log": {"enabled": True, **spec}}}, "t").log


def test_nat_type_and_translated_tuple():
    e = event()
    assert e.nat_type == "snat"
    assert e.translated == Endpoint("172.17.0.2", 61000, "203.0.113.10", 443)
    plain = CtEvent("start", 1, 0, "ipv4", "tcp", Endpoint("a", 1, "b", 2),
                    Endpoint("b", 2, "a", 1))
    assert plain.nat_type is None


def test_record_fields():
    who = records.Identity("ns", "gw", "gw-0", "node")
    r = records.record(event("end"), who, 0.5)
    assert r["timestamp"] == "1970-01-01T00:00:00.500Z"
    assert (r["schema"], r["event"], r["natType"], r["conntrackID"]) == \
        ("vegd.translation/v1", "end", "snat", 7)
    assert r["original"] == {"source": "10.16.0.5", "sourcePort": 40000,
                             "destination": "203.0.113.10", "destinationPort": 443}
    assert r["translated"]["source"] == "172.17.0.2"
    assert r["counters"] == {"original": {"packets": 3, "bytes": 300},
                             "reply": {"packets": 2, "bytes": 2000}}
    assert "counters" not in records.record(event(), who, 0)


def test_filters_include_exclude_and_ports():
    assert records.selected(log_config(), event())
    only_udp = log_config(filters={"include": [{"protocols": ["udp"]}]})
    assert not records.selected(only_udp, event())
    assert records.selected(only_udp, event(proto="udp"))
    https = {"translated": {"destinationPorts": [{"start": 443, "end": 443}]}}
    cfg = log_config(filters={"include": [{"original": {"sourceCIDRs": ["10.16.0.0/16"]}}],
                              "exclude": [https]})
    assert not records.selected(cfg, event(dport=443))  # exclude wins
    assert records.selected(cfg, event(dport=80))
    other = log_config(filters={"include": [{"original": {"sourceCIDRs": ["10.17.0.0/16"]}}]})
    assert not records.selected(other, event())


def test_token_bucket():
    now = [0.0]
    bucket = records.TokenBucket(2, 3, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
    now[0] = 1.0
    assert [bucket.allow() for _ in range(3)] == [True, True, False]


def test_file_rotation(tmp_path):
    writer = records.RecordWriter(io.StringIO())
    path = tmp_path / "records" / "translations.jsonl"
    writer.configure_file(path, 200, 2)
    for i in range(100):
        writer.write({"n": i})
    writer.close_file()
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["translations.jsonl", "translations.jsonl.1", "translations.jsonl.2"]
    assert json.loads(path.read_text().splitlines()[-1]) == {"n": 99}


def test_observer_accounts_for_every_event_and_dedupes_replays(tmp_path):
    stream = io.StringIO()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"gateway": "gw", "observability": {"conntrack": {"log": {
        "enabled": True, "rateLimit": {"recordsPerSecond": 1, "burst": 2}}}}}))
    obs = Observer(CollectorRegistry(), records.Identity(pod="p"), config, tmp_path,
                   stream=stream)
    obs.reload()
    for i in range(5):
        obs._on_event(event(cid=i, sport=40000 + i))
    # a late event of an entry a table re-read already recorded is not recorded again
    obs._on_event(event(cid=0, sport=40000))
    while not obs._queue.empty():
        obs._write_one(obs._queue.get_nowait())
    counts = obs.snapshot()
    assert counts["written"] == 2 and counts["dropped"] == {"rate_limit": 3}
    obs._summary(force=True)
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["type"] for x in lines] == ["translation", "translation", "summary"]
    assert lines[-1]["dropped"]["rate_limit"] == 3 and lines[-1]["written"] == 2
    assert lines[0]["gateway"] == "gw" and lines[0]["pod"] == "p"
    assert ctevents.PROTOCOLS[6] == "tcp"
