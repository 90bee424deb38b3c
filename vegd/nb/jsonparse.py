"""A JSON parser for python-ovs' JSON-RPC connections that decodes with the stdlib's C decoder.

python-ovs from PyPI has no C JSON parser unless it was built against the OVS development files;
its pure-Python parser then handles every character of every NB reply and update in Python (78%
of the IDL's initial read of a 4,000-row NB, and of parsing the echo of a large commit). This
parser keeps python-ovs' interface (`feed` returns how much of the input it took, `is_done`,
`finish` returns the value or an error string) but only finds where a message ends: a regular
expression steps over whole strings and brackets, and the message's text is decoded once, with
`json.loads`. It stops exactly at the end of the first value, so the next message's bytes stay
in the connection's input, as with python-ovs' own parser.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from typing import Any

import ovs.json

# A whole string, an opening or closing bracket, or the start of a string that goes on past the
# end of this input.
_TOKEN = re.compile(r'(?P<s>"(?:[^"\\]|\\.)*")|(?P<o>[{\[])|(?P<c>[}\]])|(?P<u>")', re.S)
# The rest of a string that began in an earlier input, up to and including its closing quote.
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.S)
_STRING_BODY = re.compile(r'(?:[^"\\]|\\.)*', re.S)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
# brackets as bytes 2 (opening) and 0 (closing), everything else dropped: a depth walk in C
_BRACKETS = str.maketrans({"{": "\x02", "[": "\x02", "}": "\x00", "]": "\x00"})
_DROP = re.compile(r"[^\[\]{}]+")

class StdlibParser:
    """python-ovs' `ovs.json.Parser` interface over `json.loads`."""

    def __init__(self, check_trailer: bool = False, keep_text: bool = True) -> None:
        self.check_trailer = check_trailer
        self.keep_text = keep_text  # False: only find the end (the caller keeps the bytes)
        self._parts: list[str] = []
        self._depth = 0
        self._in_string = False  # the input so far ends inside a string
        self._escaped = False  # ... right after a backslash
        self._done = False
        self._scalar = False  # a top-level value that is not an array or object

    def feed(self, s: str) -> int:
        if self._done:
            return 0
        if self.check_trailer:  # a whole document (ovs.json.from_string): no framing needed
            self._parts.append(s)
            return len(s)
        end = self._scan(s)
        if self.keep_text:
            self._parts.append(s[:end])
        return end

    def _scan(self, s: str) -> int:
        pos, n = 0, len(s)
        if self._in_string:
            if self._escaped:
                if not s:
                    return 0
                pos, self._escaped = 1, False
            m = _STRING_REST.match(s, pos)
            if m is None:
                body = _STRING_BODY.match(s, pos).end()  # type: ignore[union-attr]
                self._escaped = body < n  # a backslash at the very end
                return n
            pos, self._in_string = m.end(), False
        if self._depth == 0 and not self._scalar:
            stripped = s[pos:].lstrip()
            if stripped and stripped[0] not in "{[":
                self._scalar = True  # a bare value: only a whole document can end it
        if self._scalar:
            return n
        if self._depth > 0 and self._no_end_in(s, pos):
            return n
        for m in _TOKEN.finditer(s, pos):
            kind = m.lastgroup
            if kind == "o":
                self._depth += 1
            elif kind == "c":
                self._depth -= 1
                if self._depth == 0:
                    self._done = True
                    return m.end()
            elif kind == "u":
                self._in_string = True
                body = _STRING_BODY.match(s, m.end()).end()  # type: ignore[union-attr]
                self._escaped = body < n
                return n
        return n

    def _no_end_in(self, s: str, pos: int) -> bool:
        """True, with the state advanced to the end of `s`, when the value cannot end in
        s[pos:]: its strings removed and its brackets walked at C speed (most inputs are the
        middle of a large message). False: scan it token by token."""
        rest = s[pos:] if pos else s
        if "\\" in rest:  # escapes: strings found by the regular expression
            rest = _STRING.sub("", rest)
            open_at = rest.find('"')  # an unterminated string: the rest of it is copied verbatim
            region = rest if open_at < 0 else rest[:open_at]
        else:  # every quote opens or closes a string: split at C speed (most inputs)
            parts = rest.split('"')
            region = "".join(parts[0::2])
            open_at = -1 if len(parts) % 2 else len(rest) - len(parts[-1]) - 1
            rest = rest[open_at:] if open_at >= 0 else ""
            open_at = 0 if open_at >= 0 else -1
        steps = _DROP.sub("", region).translate(_BRACKETS).encode("latin-1")
        lowest = min(itertools.accumulate(map(operator.sub, steps, itertools.repeat(1))),
                     default=0)
        if self._depth + lowest <= 0:
            return False
        self._depth += len(steps) - 2 * steps.count(0)
        if open_at >= 0:
            self._in_string = True
            start = len(s) - (len(rest) - open_at)
            body = _STRING_BODY.match(s, start + 1).end()  # type: ignore[union-attr]
            self._escaped = body < len(s)
        return True

    def is_done(self) -> bool:
        return self._done

    def finish(self, object_pairs_hook: Any = None) -> Any:
        text = "".join(self._parts)
        self._parts = []  # a 50 MB reply is not held twice while it is decoded
        if not text.strip():
            return "empty input stream"
        try:
            return json.loads(text, object_pairs_hook=object_pairs_hook)
        except ValueError as exc:
            return f"syntax error: {exc}"


def _new(cls: type, *args: Any, **kwargs: Any) -> StdlibParser:
    return StdlibParser(*args, **kwargs)


def install() -> None:
    """Make `ovs.json.Parser(...)` give this parser, unless python-ovs has its own C parser.
    (As python-ovs does for its C parser: `Parser.__new__` returns the other parser; the class
    itself stays, since its methods name it.)"""
    if ovs.json.PARSER != ovs.json.PARSER_C:
        ovs.json.Parser.__new__ = staticmethod(_new)  # type: ignore[method-assign,assignment]


def pure_python_parser() -> Any:
    """python-ovs' own pure-Python parser (the tests compare against it)."""
    parser = object.__new__(ovs.json.Parser)
    parser.__init__()
    return parser
