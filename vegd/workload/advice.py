"""Advice on a valid spec that will work badly: said once, never refused.

BFD timers on stock OVN 23.03 (measured in docs/performance.md, "Failover"): ovn-controller's
pinctrl transmits late, about its own interval plus the instance's, so when the instance (FRR)
transmits no faster than it expects to receive (minTX >= minRX) and FRR's detection time
(multiplier x minRX) is short, FRR declares the session down and the sessions flap. Asymmetric
timers (minTX 100, minRX 300, multiplier 3) failed over in 370 ms median without a flap.
"""

from __future__ import annotations

from vegd.model.objects import VpcEgressGateway

FLAP_DETECTION_MS = 1500  # below this FRR-side detection time, symmetric timers flapped


def bfd_timer_advice(gw: VpcEgressGateway, stock_ovn: bool) -> str:
    """A sentence for an Event or a log line, or "" when there is nothing to say."""
    b = gw.bfd
    if not (stock_ovn and b.enabled):
        return ""
    if b.min_tx < b.min_rx or b.multiplier * b.min_rx >= FLAP_DETECTION_MS:
        return ""
    return (f"BFD minTX {b.min_tx} ms, minRX {b.min_rx} ms, multiplier {b.multiplier}: with "
            "stock OVN (bfd_port_mode stock) sessions flap when minTX >= minRX and "
            f"multiplier x minRX < {FLAP_DETECTION_MS} ms; minTX 100, minRX 300, multiplier 3 "
            "fails over in about 0.4 s without flapping (docs/performance.md, Failover)")
