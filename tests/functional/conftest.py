from __future__ import annotations

import pytest
from scenario import Scenario, add_base_topology


@pytest.fixture
def seed(fresh_ovn, tmp_path):
    """A private NB/SB/northd with Kube-OVN's base topology and the seed's manifests."""
    add_base_topology(fresh_ovn)
    return Scenario(fresh_ovn, tmp_path)
