"""What a plan depends on besides the cluster: who we are and what the NB schema can do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

BfdPortMode = Literal["stock", "kube-ovn"]


@dataclass(frozen=True)
class PlanSettings:
    vendor: str = "vegd"
    # stock: add the peer switch and TTL helper stock OVN needs for bfd@<vpc> (docs/bfd-port.md);
    # kube-ovn: Kube-OVN's patched OVN runs sessions on the peer-less port by itself.
    bfd_port_mode: BfdPortMode = "stock"
    policy_bfd_sessions: bool = False  # NB schema has Logical_Router_Policy.bfd_sessions
