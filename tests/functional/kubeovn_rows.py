"""NB rows shaped exactly as Kube-OVN's VEG controller writes them
(../shared/reference/kube-ovn-veg.md §3: address sets, port group, 29100/29090/29150 policies,
BFD rows, the VPC's bfd@<vpc> port with its HA_Chassis_Group; vendor `kube-ovn`), written with
ovn-nbctl as a stand-in for Kube-OVN's libovsdb client. The one difference: this NB schema (OVN
23.03) has no `Logical_Router_Policy.bfd_sessions`, so the policies carry none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from vegd.plan.names import owner_hash

VENDOR = "kube-ovn"
TABLES = ("Address_Set", "Port_Group", "Logical_Router_Policy", "BFD", "Logical_Router_Port",
          "HA_Chassis_Group", "HA_Chassis")


@dataclass
class KubeOvnGateway:
    key: str  # ns/name
    router: str
    sources4: list[str]
    nexthops4: list[str]
    bfd: tuple[int, int, int] | None = None  # (minRX, minTX, multiplier)
    bfd_port: str = ""  # bfd@<vpc> when BFD is on
    selected_ports: list[str] = field(default_factory=list)  # LSP names: a Port_Group
    local: dict[str, list[str]] = field(default_factory=dict)  # node port group -> nexthops


def _ids(gw: KubeOvnGateway, af: int | None) -> list[str]:
    ids = [f"external_ids:vendor={VENDOR}", f'external_ids:vpc-egress-gateway="{gw.key}"']
    return ids + ([f"external_ids:af={af}"] if af else [])


def _set(values: list[str]) -> str:
    return "[" + ",".join(f'"{v}"' for v in values) + "]" if values else "[]"


def write_gateway(ovn, gw: KubeOvnGateway) -> None:
    h = owner_hash(gw.key)
    cmds: list[list[str]] = []
    for af, src in ((4, gw.sources4), (6, [])):
        cmds.append(["create", "Address_Set", f"name=VEG.{h}.ipv{af}",
                     f"addresses={_set(src)}", *_ids(gw, af)])
        if not gw.selected_ports:  # the always-empty compatibility set (#7251)
            cmds.append(["create", "Address_Set", f"name=VEG.{h}_ip{af}", "addresses=[]",
                         *_ids(gw, af)])
    _run(ovn, cmds)
    if gw.selected_ports:
        ovn.nbctl("pg-add", f"VEG.{h}", *gw.selected_ports)
        # the af=4 then af=6 passes both rewrite its external_ids: af ends as 6 (§3.3)
        ovn.nbctl("set", "Port_Group", f"VEG.{h}", *_ids(gw, 6))
    sessions: dict[str, str] = {}
    if gw.bfd:
        min_rx, min_tx, mult = gw.bfd
        for hop in gw.nexthops4:
            sessions[hop] = ovn.nbctl(
                "create", "BFD", f"logical_port={gw.bfd_port}", f"dst_ip={hop}",
                f"min_rx={min_tx}", f"min_tx={min_rx}", f"detect_mult={mult}",
                *_ids(gw, 4)).strip()
    for af in (4, 6):
        matches = [f"ip{af}.src == $VEG.{h}.ipv{af}", f"ip{af}.src == $VEG.{h}_ip{af}"]
        hops = gw.nexthops4 if af == 4 else []
        for m in matches:
            if hops:
                _policy(ovn, gw, af, 29100, m, "reroute", hops)
            if gw.bfd:  # drops exist regardless of nexthops, also for af=6
                _policy(ovn, gw, af, 29090, m, "drop", [])
            for node_pg, local_hops in gw.local.items() if af == 4 else ():
                _policy(ovn, gw, af, 29150, f"ip4.src == ${node_pg}_ip4 && {m}", "reroute",
                        local_hops)


def _policy(ovn, gw: KubeOvnGateway, af: int, priority: int, match: str, action: str,
            hops: list[str]) -> None:
    cols = [f"priority={priority}", f"match={json.dumps(match)}", f"action={action}",
            *_ids(gw, af)]
    if hops:
        cols.append(f"nexthops={_set(hops)}")
    ovn.nbctl("--id=@p", "create", "Logical_Router_Policy", *cols, "--",
              "add", "Logical_Router", gw.router, "policies", "@p")


def write_bfd_port(ovn, vpc: str, ip: str, chassis: list[str]) -> None:
    """reconcileVpcBfdLRP: bfd@<vpc> (random MAC, bfd-only, no peer) in HA_Chassis_Group
    bfd@<vpc>, priorities 100, 99, ..."""
    name = f"bfd@{vpc}"
    ovn.nbctl("lrp-add", vpc, name, "0a:1b:2c:3d:4e:5f", ip, "--",
              "set", "Logical_Router_Port", name, "options:bfd-only=true",
              f"external_ids:vendor={VENDOR}", f"external_ids:lr={vpc}")
    ovn.nbctl("ha-chassis-group-add", name)
    for i, ch in enumerate(chassis):
        ovn.nbctl("ha-chassis-group-add-chassis", name, ch, str(100 - i))
    ovn.nbctl("set", "HA_Chassis_Group", name, f"external_ids:vendor={VENDOR}",
              f"external_ids:lrp={name}")
    for row in ovn.nb_rows("HA_Chassis"):
        ovn.nbctl("set", "HA_Chassis", row["_uuid"], f'external_ids:group="{name}"',
                  f"external_ids:vendor={VENDOR}")
    group = ovn.nbctl("--bare", "--columns=_uuid", "find", "HA_Chassis_Group",
                      f'name="{name}"').strip()
    ovn.nbctl("set", "Logical_Router_Port", name, f"ha_chassis_group={group}")


def _run(ovn, cmds: list[list[str]]) -> None:
    args: list[str] = []
    for c in cmds:
        args += (["--"] if args else []) + c
    ovn.nbctl(*args)


def seed_gateways() -> list[KubeOvnGateway]:
    """What Kube-OVN writes for the seed's gateway1 (ovn-cluster, no BFD) and gateway2 (vpc1,
    BFD 1000/1000 x3), each with its two running instances."""
    return [
        KubeOvnGateway("default/gateway1", "ovn-cluster", ["10.16.0.0/16"],
                       ["10.16.0.12", "10.16.0.13"]),
        KubeOvnGateway("default/gateway2", "vpc1", ["192.168.0.0/24"],
                       ["192.168.0.2", "192.168.0.3"], bfd=(1000, 1000, 3),
                       bfd_port="bfd@vpc1"),
    ]


def kube_ovn_rows(ovn) -> dict[str, list]:
    """Every row of vendor kube-ovn, per table, as the server holds it: an OVSDB `select` of
    all columns, with `_uuid` and `_version` (which changes on any write to the row)."""
    ops = [{"op": "select", "table": t, "where": []} for t in TABLES]
    replies = json.loads(ovn._run("ovsdb-client", "transact", ovn.nb_unix,
                                  json.dumps(["OVN_Northbound", *ops])))
    out: dict[str, list] = {}
    for table, reply in zip(TABLES, replies, strict=True):
        mine = [r for r in reply["rows"] if ["vendor", VENDOR] in r["external_ids"][1]]
        out[table] = sorted(mine, key=lambda r: r["_uuid"][1])
    return out


def router_policy_refs(ovn, router: str) -> list[str]:
    """The router's policy UUIDs that point at kube-ovn rows (their links must survive)."""
    theirs = {r["_uuid"] for r in ovn.nb_rows("Logical_Router_Policy",
                                              f"external_ids:vendor={VENDOR}")}
    refs = ovn.nbctl("--bare", "--columns=policies", "list", "Logical_Router", router).split()
    return sorted(u for u in refs if u in theirs)
