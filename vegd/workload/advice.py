"""Advice on a valid spec that will work badly: said once, never refused.

BFD timers on stock OVN 23.03 and 25.03 (measured in docs/performance.md, "Failover"):
ovn-controller's pinctrl transmits late, about its own interval plus the instance's, so when
the instance (FRR) transmits no faster than it expects to receive (minTX >= minRX) and FRR's
detection time (multiplier x minRX) is short, FRR declares the session down and the sessions
flap. Asymmetric timers (minTX 100, minRX 300, multiplier 3) failed over in 370 ms median
without a flap.
"""

from __future__ import annotations

from vegd.model.objects import VpcEgressGateway

FLAP_DETECTION_MS = 1500  # below this FRR-side detection time, symmetric timers flapped
MIN_FRR_DETECTION_MS = 900  # below this (minRX under 300 ms at x3) no timers stayed up


def bfd_timer_advice(gw: VpcEgressGateway, stock_ovn: bool) -> str:
    """A sentence for an Event or a log line, or "" when there is nothing to say."""
    b = gw.bfd
    if not (stock_ovn and b.enabled):
        return ""
    frr_detection = b.multiplier * b.min_rx
    symmetric_and_short = b.min_tx >= b.min_rx and frr_detection < FLAP_DETECTION_MS
    if not (symmetric_and_short or frr_detection < MIN_FRR_DETECTION_MS):
        return ""
    return (f"BFD minTX {b.min_tx} ms, minRX {b.min_rx} ms, multiplier {b.multiplier}: with "
            "stock OVN (bfd_port_mode stock) sessions flap when multiplier x minRX is under "
            f"{MIN_FRR_DETECTION_MS} ms, or under {FLAP_DETECTION_MS} ms with minTX >= minRX; "
            "minTX 100, minRX 300, multiplier 3 "
            "fails over in about 0.4 s without flapping (docs/performance.md, Failover)")
