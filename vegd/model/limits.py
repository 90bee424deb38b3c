"""Numeric limits, each decided once (docs/decisions.md, "Limits decided once").

The VpcEgressGateway CRD is Kube-OVN's and admits BFD timers of 1..3600000. vegd refuses what the
gateway's FRR bfdd cannot run, so the timers written to NB and given to the gateway pod are the
same numbers the spec gives; nothing is clamped on one side only.
"""

from __future__ import annotations

CRD_BFD_RANGE = (1, 3_600_000)  # minRX, minTX, multiplier in deploy/crds/vpc-egress-gateway.yaml
BFD_INTERVAL_RANGE = (10, 60_000)  # FRR bfdd `receive-interval`/`transmit-interval` (10-60000) ms
BFD_MULTIPLIER_RANGE = (2, 255)  # FRR bfdd `detect-multiplier` (2-255)
REPLICAS_RANGE = (0, 10)  # spec.replicas in the CRD
HA_CHASSIS_PRIORITY_RANGE = (0, 32767)  # OVN_Northbound HA_Chassis.priority
