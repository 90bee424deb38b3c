"""python-ovs' JSON-RPC reader with the standard library's C JSON decoder.

python-ovs decodes every message with `ovs.json.Parser`, which is pure Python (one method call
per character) unless the package was built with OVS' C library (`ovs._json`; the PyPI wheel is
not, and Debian's only fits its own Python). NB's initial contents at 1,000 gateways, 1.8 MB, took
it 2.4 s; `json.loads` takes 0.08 s. The stream has no framing, so `Parser` here only finds where
the top-level value ends (a regular expression jumps between quotes and brackets, about two steps
per string) and hands the whole text to `json.loads`. Same interface (`feed`, `is_done`,
`finish`), installed in `ovs.json` for this process by `install()` (docs/decisions.md).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import ovs.json

_OUTSIDE = re.compile(r'["{}\[\]]')  # outside strings: what opens a string or (un)nests
_INSIDE = re.compile(r'["\\]')  # inside a string: its end, or an escape
_SPACE = " \t\r\n"
_NOT_BRACKET = re.compile(r"[^{}\[\]]+")
_STEP = {"{": 1, "[": 1, "}": -1, "]": -1}


class Parser:
    """`ovs.json.Parser` for one JSON object or array (a JSON-RPC message): `feed(text)` returns
    how many characters it took (the rest belongs to the next message), `finish()` the value, or
    an error message (a str) as python-ovs' parser does."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._depth = 0
        self._in_string = False
        self._escaped = False  # the last fed character was a backslash inside a string
        self._started = False
        self._done = False
        self._error = ""

    def feed(self, s: str) -> int:
        if self._done:
            return 0
        n = len(s)
        pos = 0
        if not self._started:
            while pos < n and s[pos] in _SPACE:
                pos += 1
            if pos == n:
                return n
            if s[pos] not in "{[":
                self._fail(f"syntax error at beginning of input: {s[pos]!r}")
                return pos
            self._started = True
        start = pos
        if self._skip(s, pos):
            self._parts.append(s[start:])
            return n
        if self._escaped and pos < n:
            pos += 1
            self._escaped = False
        while True:
            if self._in_string:
                m = _INSIDE.search(s, pos)
                if m is None:
                    break
                if m.group() == "\\":
                    pos = m.end() + 1  # skip what it escapes (\uXXXX has no quote in it)
                    if pos > n:
                        self._escaped = True
                        break
                else:
                    self._in_string = False
                    pos = m.end()
                continue
            m = _OUTSIDE.search(s, pos)
            if m is None:
                break
            c = m.group()
            pos = m.end()
            if c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth == 0:
                    self._parts.append(s[start:pos])
                    self._done = True
                    return pos
        self._parts.append(s[start:])
        return n

    def _skip(self, s: str, pos: int) -> bool:
        """Take s[pos:] in a few C-speed steps when it cannot end the value (the usual piece of
        a large message): no escapes in it, and the depth stays above 0 all along it. The scan
        in `feed` takes the others."""
        if self._escaped or "\\" in s:
            return False
        pieces = s[pos:].split('"')
        brackets = _NOT_BRACKET.sub("", "".join(pieces[1 if self._in_string else 0::2]))
        depth = self._depth
        if brackets:
            depths = list(itertools.accumulate(map(_STEP.__getitem__, brackets), initial=depth))
            if min(depths) <= 0:
                return False
            depth = depths[-1]
        self._depth = depth
        if len(pieces) % 2 == 0:  # an odd number of quotes
            self._in_string = not self._in_string
        return True

    def is_done(self) -> bool:
        return self._done

    def _fail(self, message: str) -> None:
        self._error = message
        self._done = True

    def finish(self) -> Any:
        if self._error:
            return self._error
        if not self._done:
            return "unexpected end of input"
        try:
            return json.loads("".join(self._parts))
        except ValueError as exc:
            return f"syntax error: {exc}"


_PYTHON_PARSER = ovs.json.Parser


class _Dispatch(_PYTHON_PARSER):  # type: ignore[misc]
    """What `ovs.json.Parser(...)` makes once installed: ours for the JSON-RPC stream (it asks
    with no arguments), python-ovs' own for everything else (`from_string` wants scalars and a
    trailer check). A subclass, because python-ovs' `__new__` names the class it replaces."""

    def __new__(cls, *args: Any, **kw: Any) -> Any:
        if not args and not kw:
            return Parser()
        theirs = object.__new__(_PYTHON_PARSER)
        theirs.__init__(*args, **kw)  # not an instance of cls: Python will not call it
        return theirs


def install() -> None:
    """Make python-ovs read JSON-RPC messages with this parser (idempotent). A build of
    python-ovs with its own C parser is left as it is."""
    if ovs.json.PARSER == ovs.json.PARSER_PY:
        ovs.json.Parser = _Dispatch
