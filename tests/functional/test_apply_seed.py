"""`vegd apply` against a real NB + northd: the seed's outputs and every row kind's life cycle."""

from __future__ import annotations

import re
import subprocess
import sys

from scenario import ROOT, gateway_pod, nb_dump, pod


def policies(ovn, router: str) -> str:
    return ovn.nbctl("lr-policy-list", router)


def test_seed_outputs(seed, capsys):
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    ovn = seed.ovn
    ovn.sync()
    assert re.search(r"29100\s+ip4.src == 10.16.0.0/16\s+reroute\s+10.16.0.12, 10.16.0.13",
                     policies(ovn, "ovn-cluster"))
    routes = ovn.nbctl("lr-route-list", "vpc1")
    for hop in ("192.168.0.2", "192.168.0.3"):
        assert re.search(rf"192.168.0.0/24\s+{hop} src-ip ecmp ecmp-symmetric-reply bfd", routes)
    bfd = ovn.nb_rows("BFD", "logical_port=bfd@vpc1")
    assert sorted(r["dst_ip"] for r in bfd) == ["192.168.0.2", "192.168.0.3"]
    for row in bfd:
        assert (row["min_rx"], row["min_tx"], row["detect_mult"]) == ("1000", "1000", "3")
        assert row["external_ids"] == "af=4 vendor=vegd vpc-egress-gateway=default/gateway2"
    show = ovn.nbctl("show", "vpc1")
    # ovn-nbctl 24.03+ also prints the port's link-local address (ipv6-lla) between the two
    assert re.search(r'port bfd@vpc1\n\s+mac: "0a:[0-9a-f:]+"\n(\s+ipv6-lla: "fe80::[0-9a-f:]+"\n)?'
                     r'\s+networks: \["10.255.255.255"\]', show)
    # the port is pinned to the three chassis of the example nodes, 100, 99, 98
    chassis = ovn.nb_rows("HA_Chassis")
    assert sorted(int(c["priority"]) for c in chassis) == [98, 99, 100]


def test_apply_twice_changes_nothing(seed, capsys):
    assert seed.apply(capsys=capsys)[0] == 0
    before = nb_dump(seed.ovn)
    code, report = seed.apply(capsys=capsys)
    assert code == 0
    assert report["transactions"] == 0
    assert all(not o["created"] and not o["updated"] and not o["deleted"]
               for o in report["owners"])
    assert nb_dump(seed.ovn) == before


def test_northd_reroutes_a_pod_to_a_nexthop(seed, capsys):
    ovn = seed.ovn
    ovn.nbctl("lsp-add", "ovn-default", "pod1", "--", "lsp-set-addresses", "pod1",
              "0a:58:0a:10:00:05 10.16.0.5")
    for i, ip in ((12, "10.16.0.12"), (13, "10.16.0.13")):
        ovn.nbctl("lsp-add", "ovn-default", f"gw{i}", "--", "lsp-set-addresses", f"gw{i}",
                  f"0a:58:0a:10:00:{i:02x} {ip}")
    assert seed.apply(capsys=capsys)[0] == 0
    ovn.sync()
    flows = ovn.lflows("ovn-cluster")
    assert re.search(r"lr_in_policy.*priority=29100.*ip4.src == 10.16.0.0/16", flows)
    trace = ovn.trace("ovn-default", 'inport == "pod1" && eth.src == 0a:58:0a:10:00:05 && '
                      "eth.dst == 0a:58:0a:10:00:01 && ip4.src == 10.16.0.5 && "
                      "ip4.dst == 198.51.100.10 && ip.ttl == 64", "--minimal")
    assert "select:" in trace, trace  # ECMP over both nexthops
    assert re.search(r'output\("gw1[23]"\)', trace), trace


def test_replicas_one_two_one(seed, capsys):
    gw = seed.find("VpcEgressGateway", "gateway1")
    second = seed.pods_of("gateway1")[1]
    gw["spec"]["replicas"] = 1
    seed.remove("Pod", second["metadata"]["name"])
    assert seed.apply(capsys=capsys)[0] == 0
    assert re.search(r"29100\s+ip4.src == 10.16.0.0/16\s+reroute\s+10.16.0.12\n",
                     policies(seed.ovn, "ovn-cluster"))
    uuid = seed.ovn.nb_rows("Logical_Router_Policy", "priority=29100")[0]["_uuid"]
    gw["spec"]["replicas"] = 2
    seed.objects.append(second)
    code, report = seed.apply(capsys=capsys)
    assert code == 0
    assert "10.16.0.12, 10.16.0.13" in policies(seed.ovn, "ovn-cluster")
    owner = next(o for o in report["owners"] if o["owner"].endswith("default/gateway1"))
    assert owner["updated"] and not owner["created"] and not owner["deleted"]
    assert seed.ovn.nb_rows("Logical_Router_Policy", "priority=29100")[0]["_uuid"] == uuid


def test_scaling_a_bfd_gateway_adds_and_removes_routes_and_sessions(seed, capsys):
    gw = seed.find("VpcEgressGateway", "gateway2")
    gw["spec"]["replicas"] = 3
    seed.objects.append(gateway_pod("gateway2", 3, "192.168.0.4", "172.17.0.15",
                                    "kube-ovn-control-plane", "subnet1"))
    assert seed.apply(capsys=capsys)[0] == 0
    assert len(seed.ovn.nb_rows("BFD", "logical_port=bfd@vpc1")) == 3
    assert seed.ovn.nbctl("lr-route-list", "vpc1").count("src-ip ecmp") == 3
    gw["spec"]["replicas"] = 1
    seed.remove("Pod", "gateway2-3")
    seed.remove("Pod", "gateway2-fcc6b8b87-8lgvx")
    assert seed.apply(capsys=capsys)[0] == 0
    assert [r["dst_ip"] for r in seed.ovn.nb_rows("BFD", "logical_port=bfd@vpc1")] == [
        "192.168.0.2"]
    assert seed.ovn.nbctl("lr-route-list", "vpc1").count("src-ip") == 1


def test_timer_change_updates_bfd_rows_in_place(seed, capsys):
    assert seed.apply(capsys=capsys)[0] == 0
    before = {r["dst_ip"]: r["_uuid"] for r in seed.ovn.nb_rows("BFD", "logical_port=bfd@vpc1")}
    seed.find("VpcEgressGateway", "gateway2")["spec"]["bfd"] = {
        "enabled": True, "minRX": 300, "minTX": 200, "multiplier": 5}
    assert seed.apply(capsys=capsys)[0] == 0
    rows = seed.ovn.nb_rows("BFD", "logical_port=bfd@vpc1")
    assert {r["dst_ip"]: r["_uuid"] for r in rows} == before
    for row in rows:  # OVN expects to receive at the instance's minTX, sends at its minRX
        assert (row["min_rx"], row["min_tx"], row["detect_mult"]) == ("200", "300", "5")


def test_bfd_on_off_on(seed, capsys):
    gw = seed.find("VpcEgressGateway", "gateway2")
    gw["spec"]["bfd"] = {"enabled": False}
    assert seed.apply(capsys=capsys)[0] == 0
    ovn = seed.ovn
    assert not ovn.nb_rows("BFD", "logical_port=bfd@vpc1")
    assert "src-ip" not in ovn.nbctl("lr-route-list", "vpc1")
    assert re.search(r"29100\s+ip4.src == 192.168.0.0/24\s+reroute\s+192.168.0.2, 192.168.0.3",
                     policies(ovn, "vpc1"))
    gw["spec"]["bfd"] = {"enabled": True}
    assert seed.apply(capsys=capsys)[0] == 0
    assert len(ovn.nb_rows("BFD", "logical_port=bfd@vpc1")) == 2
    assert "29100" not in policies(ovn, "vpc1")
    assert ovn.nbctl("lr-route-list", "vpc1").count("bfd") == 2


def test_selector_membership_follows_labels(seed, capsys):
    gw = seed.find("VpcEgressGateway", "gateway1")
    gw["spec"]["selectors"] = [{"namespaceSelector": {"matchLabels": {"team": "a"}},
                                "podSelector": {"matchLabels": {"egress": "yes"}}}]
    seed.objects.append({"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": "apps", "labels": {"team": "a"}}})
    seed.objects.append(pod("web", "10.16.0.20", namespace="apps", labels={"egress": "yes"}))
    seed.objects.append(pod("db", "10.16.0.21", namespace="apps", labels={"egress": "no"}))
    assert seed.apply(capsys=capsys)[0] == 0
    ovn = seed.ovn
    name = next(r["name"] for r in ovn.nb_rows("Address_Set") if r["name"].startswith("VEG."))
    assert re.fullmatch(r"VEG\.[0-9a-f]{12}_ip4", name)
    assert ovn.nb_rows("Address_Set", f"name={name}")[0]["addresses"] == "10.16.0.20"
    assert f"ip4.src == ${name}" in policies(ovn, "ovn-cluster")
    seed.find("Pod", "db")["metadata"]["labels"]["egress"] = "yes"
    assert seed.apply(capsys=capsys)[0] == 0
    assert ovn.nb_rows("Address_Set", f"name={name}")[0]["addresses"] == "10.16.0.20 10.16.0.21"
    seed.find("Namespace", "apps")["metadata"]["labels"] = {"team": "b"}
    assert seed.apply(capsys=capsys)[0] == 0
    assert ovn.nb_rows("Address_Set", f"name={name}")[0]["addresses"] == ""


def test_deleting_a_gateway_removes_its_rows_and_nothing_else(seed, capsys):
    ovn = seed.ovn
    # another writer's rows: a user policy, a Kube-OVN-tagged address set and BFD row
    ovn.nbctl("lr-policy-add", "vpc1", "1000", "ip4.dst == 198.51.100.0/24", "drop")
    ovn.nbctl("create", "Address_Set", "name=user_set", "addresses=10.9.9.9",
              "external_ids:vendor=kube-ovn")
    ovn.nbctl("create", "BFD", "logical_port=vpc1-subnet1", "dst_ip=192.168.0.250",
              "external_ids:vendor=kube-ovn")
    foreign = {t: sorted((r for r in ovn.nb_rows(t) if "vegd" not in r.get("external_ids", "")),
                         key=lambda r: r["_uuid"])  # ovn-nbctl find lists in hash order
               for t in ("Logical_Router_Policy", "Address_Set", "BFD", "Logical_Router_Port",
                         "Logical_Router_Static_Route")}
    assert seed.apply(capsys=capsys)[0] == 0
    seed.remove("VpcEgressGateway", "gateway2")
    seed.remove("VpcEgressGateway", "gateway1")
    assert seed.apply(capsys=capsys)[0] == 0
    assert not ovn.nb_rows("BFD", "external_ids:vpc-egress-gateway=default/gateway2")
    assert "src-ip" not in ovn.nbctl("lr-route-list", "vpc1")
    assert "29100" not in policies(ovn, "ovn-cluster")
    after = {t: sorted((r for r in ovn.nb_rows(t) if "vegd" not in r.get("external_ids", "")),
                       key=lambda r: r["_uuid"]) for t in foreign}
    assert after == foreign
    # the VPC's port stays: its owner (the Vpc) is still there
    assert "bfd@vpc1" in ovn.nbctl("show", "vpc1")


def test_orphans_are_collected(seed, capsys):
    ovn = seed.ovn
    assert seed.apply(capsys=capsys)[0] == 0
    # rows of a gateway that vegd never heard of (its object was deleted while vegd was away)
    ovn.nbctl("create", "Address_Set", "name=VEG.000000000000_ip4",
              "external_ids:vendor=vegd", 'external_ids:vpc-egress-gateway="gone/gw"')
    code, report = seed.apply(capsys=capsys)
    assert code == 0
    garbage = next(o for o in report["owners"] if o["owner"] == "garbage")
    assert garbage["deleted"] == ["Address_Set[VEG.000000000000_ip4] (vpc-egress-gateway=gone/gw)"]
    assert not ovn.nb_rows("Address_Set", "name=VEG.000000000000_ip4")
    # --no-prune keeps them
    ovn.nbctl("create", "Address_Set", "name=VEG.000000000000_ip4",
              "external_ids:vendor=vegd", 'external_ids:vpc-egress-gateway="gone/gw"')
    assert seed.apply("--no-prune", capsys=capsys)[0] == 0
    assert ovn.nb_rows("Address_Set", "name=VEG.000000000000_ip4")


def test_one_write_transaction_for_every_owner(seed, capsys):
    """Count the transact requests ovsdb-server receives (its own jsonrpc debug log)."""
    ovn = seed.ovn
    log = ovn.dir / "nb.log"
    ovn.appctl("nb", "vlog/set", "jsonrpc:file:dbg")
    start = log.stat().st_size
    code, report = seed.apply(capsys=capsys)
    ovn.appctl("nb", "vlog/set", "jsonrpc:file:info")
    assert code == 0
    received = log.read_text()[start:]
    # northd writes to NB too (BFD status): count only the connection that wrote our rows
    ours = re.search(r'DBG\|([^|:]+): received request, method="transact".*vendor","vegd"',
                     received)
    assert ours, "no transaction of vegd's in the log"
    # (a transact that only selects - the leader check, the read - is no write)
    writes = [line for line in re.findall(
        rf'DBG\|{re.escape(ours.group(1))}: received request, method="transact".*', received)
        if re.search(r'"op":"(insert|update|mutate|delete)"', line)]
    owners_changed = [o for o in report["owners"]
                      if o["created"] or o["updated"] or o["deleted"]]
    assert len(owners_changed) == 3  # vpc1, gateway1, gateway2
    assert len(writes) == 1 == report["transactions"]  # every owner in one transaction


def test_console_script_exit_codes(seed, tmp_path):
    exe = [sys.executable, "-m", "vegd"]
    ok = subprocess.run([*exe, "apply", "-f", str(ROOT / "examples/seed"), "--nb-connection",
                         seed.ovn.nb_unix], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "vpc-egress-gateway=default/gateway1: created 1" in ok.stdout
    down = subprocess.run([*exe, "apply", "-f", str(ROOT / "examples/seed"), "--nb-connection",
                           f"unix:{tmp_path}/nothing.sock", "--timeout", "2"],
                          capture_output=True, text=True, cwd=ROOT)
    assert down.returncode == 2
    assert "NB:" in down.stderr
    bad_args = subprocess.run([*exe, "apply"], capture_output=True, text=True, cwd=ROOT)
    assert bad_args.returncode == 2


def test_apply_warns_about_bfd_timers_that_flap_on_stock_ovn(seed, capsys):
    from vegd.cli import main as vegd_main

    seed.find("VpcEgressGateway", "gateway2")["spec"]["bfd"].update(minTX=300, minRX=300)
    code = vegd_main(["apply", "-f", str(seed.write()), "--nb-connection", seed.ovn.nb_unix,
                      "--sb-connection", seed.ovn.sb_unix])
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: VpcEgressGateway default/gateway2" in err and "minRX 300" in err


def test_no_bfd_row_for_a_router_port_that_does_not_exist(seed, capsys):
    """ovn-northd 25.03.0 dies on a BFD row whose port does not exist (23.03 does not): a
    subnet whose router port is not in NB yet gets no TTL helper row, northd keeps running, and
    the row comes once the port is there."""
    ovn = seed.ovn
    seed.objects.append({"apiVersion": "kubeovn.io/v1", "kind": "Subnet",
                         "metadata": {"name": "subnet9"},
                         "spec": {"vpc": "vpc1", "protocol": "IPv4", "cidrBlock": "192.168.9.0/24",
                                  "gateway": "192.168.9.1"}})
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    ovn.sync()   # northd is alive and caught up
    assert not ovn.nb_rows("BFD", 'logical_port="vpc1-subnet9"')
    assert ovn.nb_rows("BFD", 'logical_port="vpc1-subnet1"')   # the other helpers are there
    assert seed.apply(capsys=capsys)[1]["transactions"] == 0
    ovn.nbctl("lrp-add", "vpc1", "vpc1-subnet9", "0a:58:c0:a8:09:01", "192.168.9.1/24")
    code, report = seed.apply(capsys=capsys)
    assert code == 0 and report["transactions"] == 1, report
    ovn.sync()
    assert [r["dst_ip"] for r in ovn.nb_rows("BFD", 'logical_port="vpc1-subnet9"')] == \
        ["192.168.9.1"]
