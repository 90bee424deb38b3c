"""NB connections as OVN writes them: TCP, and the members of a 3-server RAFT cluster."""

from __future__ import annotations

import socket
import subprocess

import pytest
from ovnstack import NB_SCHEMA, stop_pid, wait_for
from scenario import BASE_TOPOLOGY, Scenario


def test_apply_over_tcp(fresh_ovn, tmp_path, capsys):
    subprocess.run(["bash", str(BASE_TOPOLOGY), fresh_ovn.nb_tcp_remote], check=True,
                   capture_output=True)
    scenario = Scenario(fresh_ovn, tmp_path)
    scenario.ovn = type("Tcp", (), {"nb_unix": fresh_ovn.nb_tcp_remote,
                                    "sb_unix": fresh_ovn.sb_tcp_remote})()
    code, report = scenario.apply(capsys=capsys)
    assert code == 0, report
    assert "10.16.0.12, 10.16.0.13" in fresh_ovn.nbctl("lr-policy-list", "ovn-cluster")


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def raft_nb(tmp_path):
    """Three clustered NB servers on loopback; yields (connection string, pids, dir)."""
    ports = _free_ports(3)
    pids: list[int] = []
    run = lambda *c: subprocess.run(c, check=True, capture_output=True, text=True)  # noqa: E731
    run("ovsdb-tool", "create-cluster", f"{tmp_path}/nb0.db", NB_SCHEMA,
        f"tcp:127.0.0.1:{ports[0]}")
    for i in (1, 2):
        run("ovsdb-tool", "join-cluster", f"{tmp_path}/nb{i}.db", "OVN_Northbound",
            f"tcp:127.0.0.1:{ports[i]}", f"tcp:127.0.0.1:{ports[0]}")
    try:
        for i in range(3):
            run("ovsdb-server", f"{tmp_path}/nb{i}.db", "--detach", "--no-chdir", "-vconsole:off",
                f"--pidfile={tmp_path}/nb{i}.pid", f"--log-file={tmp_path}/nb{i}.log",
                f"--unixctl={tmp_path}/nb{i}.ctl", f"--remote=punix:{tmp_path}/nb{i}.sock")
            pids.append(int((tmp_path / f"nb{i}.pid").read_text()))

        def all_members() -> bool:
            return all("Status: cluster member" in subprocess.run(
                ["ovs-appctl", "-t", f"{tmp_path}/nb{i}.ctl", "cluster/status", "OVN_Northbound"],
                capture_output=True, text=True).stdout for i in range(3))

        wait_for(all_members, 15, what="the RAFT cluster to form")
        yield ",".join(f"unix:{tmp_path}/nb{i}.sock" for i in range(3)), pids, tmp_path
    finally:
        for pid in pids:
            stop_pid(pid)


def test_apply_to_a_raft_cluster_writes_through_the_leader(raft_nb, tmp_path, capsys):
    remote, _, directory = raft_nb
    subprocess.run(["bash", str(BASE_TOPOLOGY), remote], check=True, capture_output=True)
    scenario = Scenario(None, tmp_path)
    scenario.ovn = type("Raft", (), {"nb_unix": remote, "sb_unix": ""})()
    code, report = _apply(scenario, capsys)
    assert code == 0, report
    # every member has the rows: they were committed through the cluster
    for i in range(3):
        out = subprocess.run(["ovn-nbctl", f"--db=unix:{directory}/nb{i}.sock", "--no-leader-only",
                              "lr-policy-list", "ovn-cluster"], capture_output=True, text=True)
        assert "10.16.0.12, 10.16.0.13" in out.stdout, out.stderr


def _apply(scenario, capsys, *extra):
    from vegd.cli import main
    code = main(["apply", "-f", str(scenario.write()), "--nb-connection", scenario.ovn.nb_unix,
                 "--output", "json", *extra])
    out = capsys.readouterr()
    return code, out.out if code == 0 else out.err
