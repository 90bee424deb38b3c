"""`vegd gateway setup | run | teardown`. Exit codes: 0 ok, 1 invalid settings (nothing applied),
2 runtime failure (whatever was applied has been rolled back)."""

from __future__ import annotations

import logging
import sys

from pyroute2 import NetlinkError  # type: ignore[import-untyped]

from vegd import logs
from vegd.gateway import netsetup, settings, snat
from vegd.gateway.bfdd import Bfdd, Peer, Timers

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_RUNTIME = 2

log = logging.getLogger("vegd.gateway")


def main(argv: list[str]) -> int:
    try:
        s = settings.parse(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for a usage error
        return EXIT_OK if not exc.code else EXIT_INVALID
    except settings.SettingsError as exc:
        print(f"vegd gateway: invalid settings: {exc}", file=sys.stderr)
        return EXIT_INVALID
    logs.configure(s.log_format, s.log_level.lower())
    if not snat.available():
        print("vegd gateway: the nft command (Debian package nftables) is missing",
              file=sys.stderr)
        return EXIT_RUNTIME
    if s.command == "teardown":
        return _teardown(s)
    try:
        with netsetup.iproute() as ipr:
            plan = netsetup.plan(s, ipr)
    except netsetup.PlanError as exc:
        print(f"vegd gateway: invalid settings: {exc}", file=sys.stderr)
        return EXIT_INVALID
    code = _setup(s, plan)
    if code != EXIT_OK or s.command == "setup":
        return code
    from vegd.gateway import agent

    return agent.run(s, plan)


def _setup(s: settings.Settings, plan: netsetup.Plan) -> int:
    try:
        with netsetup.iproute() as ipr:
            netsetup.apply(plan, ipr)
    except netsetup.PlanError as exc:
        print(f"vegd gateway: invalid settings: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except (OSError, NetlinkError, snat.SnatError) as exc:
        log.error("setup failed, rolling back: %s", exc)
        try:
            with netsetup.iproute() as ipr:
                netsetup.teardown(s, ipr)
        except (OSError, NetlinkError, snat.SnatError) as again:
            log.error("rollback failed too: %s", again)
        return EXIT_RUNTIME
    return EXIT_OK


def _teardown(s: settings.Settings) -> int:
    try:
        # A bfdd left by a `run` that was SIGKILLed would keep answering OVN: stop it too.
        Bfdd(s.state_dir / "frr", [Peer(p, p) for p in s.bfd_peers],
             Timers(s.bfd_min_tx, s.bfd_min_rx, s.bfd_multiplier)).stop_stale()
        with netsetup.iproute() as ipr:
            netsetup.teardown(s, ipr)
    except (OSError, NetlinkError, snat.SnatError) as exc:
        log.error("teardown failed: %s", exc)
        return EXIT_RUNTIME
    return EXIT_OK
