"""`vegd apply`'s one-shot NB client drops the server's echo of its one transaction: it must then
refuse to diff against the stale replica, and a reconnect must read everything again."""

from __future__ import annotations

import pytest
from ovnstack import wait_for

from vegd.nb.client import NbClient
from vegd.nb.errors import ConnectionLost
from vegd.plan.rows import AddressSet, Desired, Owner, pairs

OWNER = Owner("vpc-egress-gateway", "default/oneshot")
ROWS = (AddressSet("oneshot_ip4", ("10.0.0.1",),
                   pairs({"vendor": "vegd", "vpc-egress-gateway": "default/oneshot"})),)


def test_the_echo_is_dropped_a_second_diff_refused_and_a_reconnect_reads_it_all(fresh_ovn):
    nb = NbClient(fresh_ovn.nb_unix, one_shot=True)
    try:
        changes = nb.write([Desired(OWNER, ROWS)])
        assert changes[str(OWNER)].created == ["Address_Set[oneshot_ip4]"]
        assert nb.api.idl.stale  # the echo of the write never reached the replica
        with pytest.raises(ConnectionLost):
            nb.write([Desired(OWNER, ROWS)])
        fresh_ovn.appctl("nb", "ovsdb-server/reconnect")  # every client reconnects
        wait_for(lambda: not nb.api.idl.stale, timeout=10)
        wait_for(lambda: nb.owned_row_counts(), timeout=10)
        assert nb.owned_row_counts() == {("vpc-egress-gateway", "default/oneshot"):
                                         {"Address_Set": 1}}
        assert nb.write([Desired(OWNER, ROWS)])[str(OWNER)].total == 0
    finally:
        nb.close()


def test_a_long_lived_client_keeps_its_replica(fresh_ovn):
    nb = NbClient(fresh_ovn.nb_unix)
    try:
        nb.write([Desired(OWNER, ROWS)])
        assert not nb.api.idl.stale
        assert nb.write([Desired(OWNER, ROWS)])[str(OWNER)].total == 0
    finally:
        nb.close()
