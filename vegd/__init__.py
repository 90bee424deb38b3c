"""vegd: VPC Egress Gateway for OVN-based Kubernetes clusters."""

__version__ = "0.1.0"
