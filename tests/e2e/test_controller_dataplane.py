"""The whole stack on a real data plane: objects in the (in-process) Kubernetes API, vegd's
controller writes NB from its watches, OVN forwards through `vegd gateway` instances, and the real
BFD state of each instance comes back into the VpcEgressGateway's status."""

from __future__ import annotations

import pytest
from kubernetes import client
from ovnstack import wait_for

from .frr import have_frr
from .lab import PORT, SERVER4, build_egress_lab
from .test_dataplane_bfd import bfd_spec

pytestmark = [pytest.mark.netns, pytest.mark.dataplane, pytest.mark.frr]


def sessions(rows, spec) -> dict[str, str]:
    ns, name = spec.namespace_name
    status = client.CustomObjectsApi(rows.raw).get_namespaced_custom_object(
        "kubeovn.io", "v1", ns, "vpc-egress-gateways", name).get("status") or {}
    return {s["ip"]: s["status"] for s in status.get("bfdSessions") or []}


def test_controller_drives_ecmp_bfd_and_reports_sessions(dataplane, controller_rows):
    if not have_frr():
        pytest.skip("FRR (bfdd, vtysh) is not installed")
    dp = dataplane
    bfd = bfd_spec()
    lab = build_egress_lab(dp, gateways=2, pods=1, bfd=bfd)
    pod, (gw1, gw2) = lab.pods[0], lab.gateways
    spec = lab.spec()
    controller_rows.apply(dp.stack, spec)
    ips = {gw1.addr(4), gw2.addr(4)}
    wait_for(lambda: sessions(controller_rows, spec) == dict.fromkeys(ips, "up"), 30,
             interval=0.1, what="both sessions up in the gateway's status")
    dp.wait_hv_sync()
    split = lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=30))
    assert split.get("gw1", 0) > 0 and split.get("gw2", 0) > 0, split

    lab.kill_gateway(gw1)
    wait_for(lambda: sessions(controller_rows, spec).get(gw1.addr(4)) == "down", 20,
             interval=0.05, what="gw1's session down in the status")
    # the survivor's session may flap once when its peer dies (ovn-controller 23.03's pinctrl
    # is woken less often; docs/performance.md "Failover"): wait for it, do not race it
    wait_for(lambda: sessions(controller_rows, spec).get(gw2.addr(4)) == "up", 20,
             interval=0.1, what="gw2's session up in the status")
    dp.wait_hv_sync()
    wait_for(lambda: lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=10)) == {"gw2": 10}, 20,
             interval=0.5, what="every new connection through gw2")
    print(f"\ncontroller-driven ECMP split {split}; after killing gw1 all through gw2; "
          f"converged in {[round(t * 1000) for t in controller_rows.converged_in]} ms")
