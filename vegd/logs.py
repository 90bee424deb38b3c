"""One log pipeline: structlog renders every record, vegd's own and the libraries' (ovsdbapp,
python-ovs through its Python logger hook in vegd.nb, the kubernetes client, urllib3, the gateway
agent's stdlib loggers), as console lines for people or one JSON object a line for collectors.

vegd's structlog loggers hand their event dicts to the stdlib root handler; records of stdlib
loggers get the same timestamp and level processors there (structlog's ProcessorFormatter), so a
collector never sees two formats in one stream.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = ("debug", "info", "warning", "error")
# The libraries' INFO is the connection chatter of every request; their warnings are not.
CHATTY = ("kubernetes", "urllib3")
# python-ovs' "connecting..."/"connected" lines: worth seeing in a daemon's log, noise around
# the report of a one-shot command (`vegd apply`, `vegd migrate`) unless debugging.
CONNECTION_CHATTER = ("ovsdbapp.backend.ovs_idl.vlog",)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """sys.stderr looked up per record, not bound once: whoever swaps it (a test runner's
    capture, a daemon redirecting) must not leave vegd's threads writing to a closed file."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def configure(fmt: str = "console", level: str = "info", one_shot: bool = False) -> None:
    numeric = getattr(logging, level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt == "json":
        tail: list[structlog.typing.Processor] = [structlog.processors.format_exc_info]
        renderer = structlog.processors.JSONRenderer()
    else:
        tail, renderer = [], structlog.dev.ConsoleRenderer(colors=False)
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail,
                    renderer]))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    for name in CONNECTION_CHATTER:
        quiet = one_shot and numeric > logging.DEBUG
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING) if quiet else logging.NOTSET)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get(name: str) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
