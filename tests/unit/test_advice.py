"""The BFD timer advisory (docs/performance.md, Failover)."""

from __future__ import annotations

import pytest

from vegd.model.objects import Bfd, VpcEgressGateway
from vegd.workload.advice import bfd_timer_advice


def gw(tx: int, rx: int, mult: int = 3, enabled: bool = True) -> VpcEgressGateway:
    return VpcEgressGateway("default", "g", "ext", bfd=Bfd(enabled, rx, tx, mult))


@pytest.mark.parametrize(("tx", "rx", "mult", "advised"), [
    (300, 300, 3, True),     # flapped on 23.03 under load
    (100, 100, 3, True),     # never all up
    (500, 300, 3, True),     # 5 session-down events at load 4
    (100, 300, 3, False),    # the recommendation
    (50, 300, 3, False),
    (1000, 1000, 3, False),  # the CRD default: slow, but stable
    (500, 500, 3, False),    # 1500 ms detection
    (100, 200, 3, True),     # never stayed up (minRX under 300)
    (50, 150, 3, True),
])
def test_advice_only_for_timers_that_flap(tx, rx, mult, advised):
    text = bfd_timer_advice(gw(tx, rx, mult), stock_ovn=True)
    assert bool(text) is advised
    if advised:
        assert "minTX 100, minRX 300, multiplier 3" in text


def test_no_advice_without_bfd_or_on_kube_ovn_builds():
    assert bfd_timer_advice(gw(300, 300, enabled=False), stock_ovn=True) == ""
    assert bfd_timer_advice(gw(300, 300), stock_ovn=False) == ""
