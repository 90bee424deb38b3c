"""vegd.nb.jsonparse frames JSON-RPC messages exactly as python-ovs' own parser does."""

import json
import random

import ovs.json
import pytest

from vegd.nb import jsonparse
from vegd.nb.jsonparse import StdlibParser, pure_python_parser

jsonparse.install()

MESSAGES = [
    {"id": 1, "result": {"Logical_Router": {"u1": {"initial": {
        "name": "r}{1", "ports": ["set", [["uuid", "a"], ["uuid", "b"]]],
        "external_ids": ["map", [["k\"]", "v\\"], ["x", "{[\\\"]}"]]]}}}}, "error": None},
    {"method": "update3", "params": ["x", "00000000-0000-0000-0000-000000000000",
                                     {"BFD": {"u": {"modify": {"status": "up"}}}}], "id": None},
    {"id": "echo", "result": [], "error": None},
    {"id": 7, "result": [{"count": 1}, {"uuid": ["uuid", "c"]}, {}], "error": None,
     "text": "ünïcode \u2603 \\u and a lone backslash \\"},
]


def frame(parser_class, text, chunks):
    """Feed `text` in the given chunk sizes the way ovs.jsonrpc.Connection.recv does."""
    out, parser, pending, cut = [], None, "", 0
    sizes = iter(chunks)
    while cut < len(text) or pending:
        if not pending:
            size = next(sizes, 4096)
            pending, cut = text[cut:cut + size], cut + size
            continue
        parser = parser or parser_class()
        pending = pending[parser.feed(pending):]
        if parser.is_done():
            out.append(parser.finish())
            parser = None
    return out


@pytest.mark.parametrize("seed", range(40))
def test_messages_split_anywhere_come_out_whole_and_in_order(seed):
    rng = random.Random(seed)
    msgs = [rng.choice(MESSAGES) for _ in range(6)] + [{"id": seed, "result": {"T": {
        f"u{i}": {"initial": {"name": f"n{i}\\\"{{[", "ids": ["map", [["k", "]}"]]]}}
        for i in range(rng.randint(0, 300))}}}]
    text = "".join(json.dumps(m, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
                   for m in msgs)
    largest = rng.choice((40, 400, 4096))
    chunks = [rng.randint(1, largest) for _ in range(len(text))]
    assert frame(StdlibParser, text, chunks) == msgs
    assert frame(pure_python_parser, text, chunks) == msgs


@pytest.mark.parametrize("seed", range(20))
def test_strings_with_brackets_and_no_escapes_split_anywhere(seed):
    """Inputs without a backslash take the quote-splitting path: a bracket in a string, a
    string cut by the end of an input, a message ending inside an input."""
    rng = random.Random(seed)
    msgs = [{"id": i, "result": [{"rows": [{"match": "ip4.dst != {10.3.0.0/16}", "n": [j, "]["],
                                            "o": ["map", [["{", "}"]]]}
                                           for j in range(rng.randint(0, 200))]}], "error": None}
            for i in range(4)]
    text = "".join(json.dumps(m, separators=(",", ":")) for m in msgs)
    assert "\\" not in text
    chunks = [rng.randint(1, rng.choice((30, 700, 5000))) for _ in range(len(text))]
    assert frame(StdlibParser, text, chunks) == msgs


def test_a_syntax_error_is_reported_as_a_string_like_python_ovs():
    p = StdlibParser()
    p.feed('{"id": 1, "result": [1,, 2]}')
    assert p.is_done()
    assert isinstance(p.finish(), str)


def test_python_ovs_makes_this_parser_once_installed():
    assert isinstance(ovs.json.Parser(), StdlibParser)


def test_from_string_uses_it_for_whole_documents():
    assert ovs.json.from_string('{"a": [1, "]"]}') == {"a": [1, "]"]}
    assert isinstance(ovs.json.from_string('{"a": 1} x'), str)
