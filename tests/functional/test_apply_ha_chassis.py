"""The bfd@<vpc> port's HA chassis group on a large node selection (issue 10): priorities are
distinct and within HA_Chassis.priority's 0..32767, and a second apply changes nothing."""

from __future__ import annotations

import pytest
from scenario import nb_dump

from vegd.plan.vpc import ha_chassis_priorities


def _node(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"bfd-node-{i:03d}", "labels": {"bfd": "yes"},
                         "annotations": {"ovn.kubernetes.io/chassis": f"chassis-{i:03d}"}}}


@pytest.mark.parametrize("count", [3, 101, 102, 250])
def test_priorities_are_distinct_highest_first_and_in_range(count):
    got = ha_chassis_priorities(count)
    assert len(got) == count == len(set(got))
    assert got == sorted(got, reverse=True)
    assert min(got) >= 0 and max(got) <= 32767
    if count <= 101:
        assert got[:3] == [100, 99, 98]  # what the seed document shows


def test_the_group_is_capped_at_the_priority_range():
    assert len(ha_chassis_priorities(40000)) == 32768


def test_a_selector_matching_102_nodes_gives_distinct_priorities_and_a_stable_plan(seed, capsys):
    seed.objects += [_node(i) for i in range(102)]
    seed.find("Vpc", "vpc1")["spec"]["bfdPort"]["nodeSelector"] = {"matchLabels": {"bfd": "yes"}}
    assert seed.apply(capsys=capsys)[0] == 0
    chassis = {c["chassis_name"].strip('"'): int(c["priority"])
               for c in seed.ovn.nb_rows("HA_Chassis")}
    assert len(chassis) == 102
    assert sorted(chassis.values()) == list(range(102))
    assert chassis["chassis-000"] == 101  # first node by name: the preferred host
    before = nb_dump(seed.ovn)
    code, report = seed.apply(capsys=capsys)
    assert code == 0
    assert report["transactions"] == 0
    assert nb_dump(seed.ovn) == before
