"""vegd.nb.json_parser: python-ovs' JSON-RPC parser interface over the stdlib decoder."""

from __future__ import annotations

import json

import ovs.json
import pytest

from vegd.nb import json_parser
from vegd.nb.json_parser import Parser

MESSAGE = {"id": 7, "result": {"Address_Set": {"a": {"new": {
    "name": "VEG.x", "addresses": ["set", ["10.0.0.1", "10.0.0.2"]],
    # brackets, quotes and escapes inside strings must not count
    "external_ids": ["map", [["match", "ip4.src == {10.0.0.1, $a} && [x]"],
                             ["q", 'say "}]" \\ done'], ["u", "caf\u00e9 \\u0041"]]]}}}},
    "error": None, "n": [1, 2.5, -3, True, False, None, {}, []]}


def feed_in_pieces(text: str, size: int) -> tuple[object, int]:
    parser = Parser()
    taken = 0
    while not parser.is_done() and taken < len(text):
        taken += parser.feed(text[taken:taken + size])
    return parser.finish(), taken


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 100_000])
def test_any_split_gives_the_value_and_stops_at_its_end(size: int) -> None:
    text = json.dumps(MESSAGE)
    value, taken = feed_in_pieces(text + '{"id": 8}', size)
    assert value == MESSAGE
    assert taken == len(text)  # the next message is left for the next parser


def test_every_split_point_around_escapes() -> None:
    text = json.dumps(MESSAGE)
    for cut in range(1, len(text)):
        parser = Parser()
        taken = parser.feed(text[:cut])
        assert taken == cut and not parser.is_done()
        assert parser.feed(text[cut:] + "[]") == len(text) - cut
        assert parser.finish() == MESSAGE


def test_same_values_as_python_ovs_parser() -> None:
    text = json.dumps(MESSAGE)
    json_parser.install()  # as vegd.nb.client does: python-ovs' own parser is asked by argument
    theirs = ovs.json.Parser(check_trailer=False)
    theirs.feed(text)
    assert Parser().feed(text) == len(text)
    ours = Parser()
    ours.feed(text)
    assert ours.finish() == theirs.finish()


def test_leading_whitespace_is_skipped() -> None:
    parser = Parser()
    assert parser.feed("  \n ") == 4 and not parser.is_done()
    parser.feed('\t{"a": [1]}')
    assert parser.finish() == {"a": [1]}


@pytest.mark.parametrize("text", ['{"a": tru}', '{"a" 1}', '{"a": [1}]'])
def test_malformed_is_an_error_message(text: str) -> None:
    parser = Parser()
    parser.feed(text)
    assert parser.is_done()
    result = parser.finish()
    assert isinstance(result, str) and "syntax error" in result


def test_not_an_object_is_an_error_message() -> None:
    parser = Parser()
    assert parser.feed("5") == 0 and parser.is_done()
    assert isinstance(parser.finish(), str)


def test_incomplete_is_an_error_message() -> None:
    parser = Parser()
    parser.feed('{"a": [1, ')
    assert not parser.is_done()
    assert parser.finish() == "unexpected end of input"


def test_installed_for_json_rpc_only() -> None:
    json_parser.install()
    json_parser.install()  # idempotent
    if ovs.json.PARSER == ovs.json.PARSER_PY:
        assert isinstance(ovs.json.Parser(), Parser)
    # from_string (it checks the trailer) keeps python-ovs' own parser
    assert ovs.json.from_string('[5, "x"]') == [5, "x"]
    assert isinstance(ovs.json.from_string('{"a": 1} x'), str)
    assert type(ovs.json.Parser(check_trailer=True)) is json_parser._PYTHON_PARSER
