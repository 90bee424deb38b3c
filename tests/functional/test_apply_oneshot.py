"""`vegd apply`'s one-shot NB path (vegd/nb/oneshot.py) against the IDL path of `vegd run`: the
same plans written both ways give the same NB, and a writer that changes a row between the read
and the commit makes the transaction fail and be read and diffed again."""

from __future__ import annotations

import json

import pytest
from ovnstack import OvnStack, have_ovn

from vegd.nb.client import NB_TABLES, NbClient
from vegd.nb.errors import BatchRefused
from vegd.nb.oneshot import OneShotNbClient
from vegd.plan.rows import (
    AddressSet,
    Bfd,
    BfdRef,
    Desired,
    HaChassis,
    HaChassisGroup,
    Owner,
    RouterPolicy,
    RouterPort,
    StaticRoute,
    Switch,
    pairs,
)

pytestmark = pytest.mark.skipif(not have_ovn(), reason="OVN (ovn-central) is not installed")

OWNER = Owner("vpc-egress-gateway", "ns/g", routers=("r1",))
EXT = pairs({"vendor": "vegd", "vpc-egress-gateway": "ns/g"})


def _stack(directory) -> OvnStack:
    stack = OvnStack(directory, northd=False).start()
    stack.nbctl("lr-add", "r1")
    return stack


def _plans(step: int, with_sessions: bool) -> list[Desired]:
    """Three steps that use every kind of column vegd writes: sets, maps, optional values,
    references (single, optional, sets of them), child rows; then changes; then nothing."""
    if step == 3:
        return []
    b2, b3 = BfdRef("lrp-g", "10.1.0.2"), BfdRef("lrp-g", "10.1.0.3")
    sessions = lambda *refs: refs if with_sessions else ()  # noqa: E731
    if step == 1:
        rows = (
            Bfd("lrp-g", "10.1.0.2", 100, 100, 3, EXT), Bfd("lrp-g", "10.1.0.3", 100, 100, 3, EXT),
            HaChassisGroup("hag", (HaChassis("ch1", 10), HaChassis("ch2", 20)), EXT),
            AddressSet("as_g", ("10.2.0.1", "10.2.0.2"), EXT),
            RouterPort("r1", "lrp-g", "0a:00:00:00:00:01", ("10.1.0.1/24",),
                       pairs({"gateway_mtu": "1400"}), "hag", EXT),
            Switch("ls_g", (("ls_g-lrp", "lrp-g"),), EXT),
            RouterPolicy("r1", 29100, "ip4.src == $as_g", "reroute", ("10.1.0.2", "10.1.0.3"),
                         sessions(b2, b3), EXT),
            StaticRoute("r1", "10.2.0.0/24", "10.1.0.2", "src-ip",
                        pairs({"ecmp_symmetric_reply": "true"}), b2, EXT),
            StaticRoute("r1", "10.2.0.0/24", "10.1.0.3", "src-ip", (), b3, EXT),
        )
    else:
        rows = (
            Bfd("lrp-g", "10.1.0.2", 200, 100, 3, EXT),
            HaChassisGroup("hag", (HaChassis("ch1", 30), HaChassis("ch3", 5)), EXT),
            AddressSet("as_g", ("10.2.0.3",), EXT),
            RouterPort("r1", "lrp-g", "0a:00:00:00:00:01", ("10.1.0.1/24", "fd00::1/64"), (),
                       "hag", EXT),
            Switch("ls_g", (("ls_g-lrp2", "lrp-g"),), EXT),
            RouterPolicy("r1", 29100, "ip4.src == $as_g", "reroute", ("10.1.0.2",),
                         sessions(b2), EXT),
            StaticRoute("r1", "10.2.0.0/24", "10.1.0.2", "src-ip", (), None, EXT),
        )
    return [Desired(OWNER, rows)]


def _sorted(changes):
    return {o: {k: sorted(v) for k, v in c.as_dict().items()} for o, c in changes.items()}


def canonical_nb(stack: OvnStack) -> dict[str, list[str]]:
    """Every row of the tables vegd replicates, each reference replaced by the row it names
    (recursively): two NBs with the same contents give the same value whatever their uuids."""
    ops = [{"op": "select", "table": t, "where": []} for t in NB_TABLES]
    reply = json.loads(stack._run("ovsdb-client", "transact", stack.nb_unix,
                                  json.dumps(["OVN_Northbound", *ops])))
    rows = {r["_uuid"][1]: (table, r) for table, result in zip(NB_TABLES, reply, strict=True)
            for r in result["rows"]}
    memo: dict[str, str] = {}

    def value(v):
        if isinstance(v, list) and v and v[0] == "uuid":
            return row(v[1]) if v[1] in rows else "dangling"
        if isinstance(v, list) and v and v[0] == "set":
            return sorted(json.dumps(value(x), sort_keys=True) for x in v[1])
        if isinstance(v, list) and v and v[0] == "map":
            return sorted([value(k), value(x)] for k, x in v[1])
        return v

    def row(uuid: str) -> str:
        if uuid not in memo:
            table, r = rows[uuid]
            memo[uuid] = json.dumps([table, {c: value(x) for c, x in r.items()
                                             if c not in ("_uuid", "_version")}], sort_keys=True)
        return memo[uuid]

    out: dict[str, list[str]] = {t: [] for t in NB_TABLES}
    for uuid, (table, _) in rows.items():
        out[table].append(row(uuid))
    return {t: sorted(v) for t, v in out.items()}


def test_the_one_shot_path_writes_what_the_idl_writes(tmp_path):
    """The same three steps (create, change, prune) through NbClient (python-ovs' IDL) into one
    NB and through OneShotNbClient into another: after every step both NBs are the same."""
    idl_stack, raw_stack = _stack(tmp_path / "idl"), _stack(tmp_path / "raw")
    idl = NbClient(idl_stack.nb_unix)
    try:
        with_sessions = idl.capabilities.policy_bfd_sessions
        for step in (1, 2, 3):
            keep = set() if step == 3 else None
            expected = idl.write(_plans(step, with_sessions), keep)
            raw = OneShotNbClient(raw_stack.nb_unix)
            got = raw.write(_plans(step, with_sessions), keep)
            assert _sorted(got) == _sorted(expected), step
            assert raw.transactions == 1 and raw.attempts == 1
            written = canonical_nb(idl_stack)
            assert canonical_nb(raw_stack) == written, f"step {step}"
            if step == 1:  # every table has rows: the comparison covers every column kind
                assert all(written[t] for t in NB_TABLES if t != "Logical_Switch_Port") and \
                    len(written["Logical_Switch_Port"]) == 1
            # and nothing is left to do, read back both ways
            assert OneShotNbClient(raw_stack.nb_unix).write(
                _plans(step, with_sessions), keep).get(str(OWNER), None) is None or \
                all(c.total == 0 for c in OneShotNbClient(raw_stack.nb_unix).write(
                    _plans(step, with_sessions), keep).values())
        assert not any(canonical_nb(raw_stack)[t] for t in NB_TABLES if t != "Logical_Router")
    finally:
        idl.close()
        idl_stack.stop()
        raw_stack.stop()


def _address_set(stack: OvnStack) -> dict[str, str]:
    return stack.nb_rows("Address_Set", "name=as_g")[0]


def test_a_writer_between_read_and_commit_makes_it_read_and_diff_again(tmp_path):
    stack = _stack(tmp_path / "nb")
    try:
        plan = [Desired(OWNER, (AddressSet("as_g", ("10.2.0.1",), EXT),))]
        OneShotNbClient(stack.nb_unix).write(plan)
        wanted = [Desired(OWNER, (AddressSet("as_g", ("10.2.0.2",), EXT),))]

        def other_writer(attempt: int) -> None:
            if attempt == 1:
                stack.nbctl("set", "Address_Set", "as_g", 'addresses="10.9.9.9"')

        nb = OneShotNbClient(stack.nb_unix, before_commit=other_writer)
        changes = nb.write(wanted)
        assert nb.attempts == 2 and nb.transactions == 1  # the first commit was refused
        assert changes[str(OWNER)].updated == ["Address_Set[as_g]"]
        assert _address_set(stack)["addresses"] == "10.2.0.2"
    finally:
        stack.stop()


def test_a_row_taken_over_between_read_and_commit_is_not_overwritten(tmp_path):
    """Another writer makes vegd's address set its own after vegd read it: the re-diff finds
    the name held by another vendor and refuses; that writer's row is left as it made it."""
    stack = _stack(tmp_path / "nb")
    try:
        OneShotNbClient(stack.nb_unix).write(
            [Desired(OWNER, (AddressSet("as_g", ("10.2.0.1",), EXT),))])

        def other_writer(attempt: int) -> None:
            stack.nbctl("set", "Address_Set", "as_g", "external_ids:vendor=someone")

        nb = OneShotNbClient(stack.nb_unix, before_commit=other_writer)
        with pytest.raises(BatchRefused, match="vendor=someone"):
            nb.write([Desired(OWNER, (AddressSet("as_g", ("10.2.0.2",), EXT),))])
        assert nb.attempts == 2 and nb.transactions == 0
        row = _address_set(stack)
        assert row["addresses"] == "10.2.0.1" and "someone" in row["external_ids"]
    finally:
        stack.stop()


def test_a_router_deleted_between_read_and_commit_gets_no_rows(tmp_path):
    """The router's children are added by mutation; the transaction also waits for the router
    as read, so nothing is inserted when it is gone (a root row would otherwise stay)."""
    stack = _stack(tmp_path / "nb")
    try:
        nb = OneShotNbClient(stack.nb_unix,
                             before_commit=lambda attempt: stack.nbctl("lr-del", "r1"))
        rows = (AddressSet("as_g", ("10.2.0.1",), EXT),
                StaticRoute("r1", "10.2.0.0/24", "10.1.0.2", "src-ip", (), None, EXT))
        with pytest.raises(BatchRefused, match="logical router r1 does not exist"):
            nb.write([Desired(OWNER, rows)])
        assert nb.attempts == 2
        assert not stack.nb_rows("Address_Set")
    finally:
        stack.stop()
