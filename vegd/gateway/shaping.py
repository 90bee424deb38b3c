"""spec.bandwidth enforced by the agent with tc: a token bucket filter (`tbf`) as the root qdisc
of the interface each direction leaves by.

- egress (toward the external network): leaves by the external interface;
- ingress (toward the VPC): leaves by the internal interface.

Shaping, not policing: excess packets wait (at most LATENCY_MS) instead of being dropped, so TCP
settles at the rate, and no ingress classifier or police action is needed (kernels built
without act_police, like the test machines', cannot police). The cost: under saturation the
internal interface's other traffic, BFD included, may wait up to LATENCY_MS, as it does behind
Kube-OVN's own ingress_rate QoS on the same NIC. The qdiscs carry vegd's handle, so teardown
removes only its own. `tc` (iproute2) is driven like `nft`: one command per change, its JSON
output read back.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from vegd.gateway.settings import Settings
from vegd.gateway.snat import SnatError

TC = "tc"
HANDLE = "7e6d:"  # vegd's root qdisc handle (0x7e6d)
LATENCY_MS = 20
MIN_BURST = 64 << 10  # a GSO super-packet on veth; smaller bursts stall TCP


class ShapingError(SnatError):
    """A tc command failed; handled like an nft failure (roll back, report)."""


def _tc(*args: str) -> str:
    try:
        proc = subprocess.run([TC, *args], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ShapingError(f"tc {' '.join(args)}: {exc}") from exc
    if proc.returncode != 0:
        raise ShapingError(f"tc {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def burst_bytes(mbps: int) -> int:
    """About 10 ms of traffic at the rate, at least MIN_BURST."""
    return max(MIN_BURST, mbps * 1_000_000 // 8 // 100)


def _qdiscs(ifname: str) -> list[dict[str, object]]:
    out = _tc("-j", "qdisc", "show", "dev", ifname)
    return list(json.loads(out or "[]"))


def _ours(ifname: str) -> bool:
    """Whether vegd's tbf is the interface's root qdisc."""
    return any(q.get("root") and q.get("handle") == HANDLE and q.get("kind") == "tbf"
               for q in _qdiscs(ifname))


def _limits(s: Settings) -> list[tuple[str, int]]:
    return [(ifname, mbps) for ifname, mbps in ((s.external_interface, s.bandwidth_egress),
                                                (s.internal_interface, s.bandwidth_ingress))
            if mbps]


def wanted(s: Settings) -> bool:
    return bool(_limits(s))


def apply(s: Settings) -> None:
    """Install the limits. A change of spec.bandwidth replaces the pod (Kube-OVN's rate
    annotations are in the pod template), so there is never an old limit to lift here."""
    for ifname, mbps in _limits(s):
        _tc("qdisc", "replace", "dev", ifname, "root", "handle", HANDLE, "tbf",
            "rate", f"{mbps}mbit", "burst", str(burst_bytes(mbps)), "latency", f"{LATENCY_MS}ms")


def check(s: Settings) -> list[str]:
    """What differs from the settings (empty: the limits are in place)."""
    return [f"rate limit (tbf {HANDLE}) missing on {ifname}"
            for ifname, _ in _limits(s) if not _ours(ifname)]


def remove(s: Settings) -> None:
    for ifname in (s.external_interface, s.internal_interface):
        try:
            if _ours(ifname):
                _tc("qdisc", "del", "dev", ifname, "root", "handle", HANDLE)
        except ShapingError:
            pass  # the interface is gone with the pod; nothing to undo


def available() -> bool:
    return shutil.which(TC) is not None
