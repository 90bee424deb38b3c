"""`vegd run` as a process under controller churn, with faults: the RAFT NB leader SIGKILLed,
and vegd itself SIGKILLed at random moments (issue 10).

The churn (`churn.py`) changes pods and gateways through the test API server while the faults
happen. When it stops, NB must be EXACTLY what the API server's final state demands. The
comparison: the API server's objects exported as manifests, and `vegd apply --dry-run` (with
pruning, the default) of them against the same NB, through the leader — exit 0 only when no
row of any owner would be created, updated or deleted, and no row of a gone owner is left. A
row missing, one too many, a stale nexthop or address-set member, an orphan of a deleted gateway:
each fails it. Two things the dry run cannot see are checked apart: rows of ours sharing a key
(the diff keys live rows by key, so a duplicate would hide behind its twin) and rows of other
writers (compared whole with their state before vegd started).

Seeds and counts: VEGD_CHAOS_SEED (default 10), VEGD_CHAOS_KILLS (SIGKILLs of vegd, default 4:
each restart costs vegd's start, 3-8 s on a loaded 2-core machine, mostly importing the
kubernetes client; the issue's 20 with VEGD_CHAOS_KILLS=20, measured in docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re
import signal
import subprocess
import time
from types import SimpleNamespace

import test_nb_connection
from churn import (
    NAMESPACE,
    Churn,
    duplicated_rows,
    export_manifests,
    foreign_rows,
    gateways_converged,
    nb_tables,
)
from kubernetes import client
from ovnstack import alive, wait_for
from scenario import BASE_TOPOLOGY, SEED, add_base_topology
from vegd_harness import VegdProcess, write_kubeconfig

from vegd.cli import main as vegd_main

pytest_plugins = ["kubeapi.fixture", "kubelet"]
raft_nb = test_nb_connection.raft_nb  # the fixture: three clustered NB servers
_leader, _restart_member = test_nb_connection._leader, test_nb_connection._restart_member

ACTIVE = "holding the NB lock: active"
CONNECTED = re.compile(r"nb\d\.sock: connected")
LEFT = re.compile(r"clustered database|connection closed|connection dropped")
COMMITTED = re.compile(r'"failed": 0,.*"event": "reconciled"')
SEED_DEFAULT = 10


def _seed() -> int:
    seed = int(os.environ.get("VEGD_CHAOS_SEED", SEED_DEFAULT))
    print(f"\nchaos seed {seed} (VEGD_CHAOS_SEED={seed} repeats the churn and the moments)")
    return seed


def _dry_run(kubeapi, remote: str, directory) -> tuple[int, str]:
    """`vegd apply --dry-run` of the API server's current objects: (exit code, its output)."""
    manifests = export_manifests(kubeapi.api_client(), directory)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = vegd_main(["apply", "--dry-run", "-f", str(manifests), "--nb-connection", remote,
                          "--output", "json", "--timeout", "10"])
    return code, out.getvalue() + err.getvalue()


def _converge(kubeapi, cluster, remote: str, workdir) -> float:
    """Wait until the statuses are converged and the dry run finds nothing to change; returns
    how long that took. On a timeout, the message shows what is still off."""
    custom = client.CustomObjectsApi(kubeapi.api_client())
    start = time.monotonic()
    last: list[object] = []

    def done() -> bool:
        pending = gateways_converged(custom, cluster)
        if pending:
            last[:] = pending
            return False
        code, report = _dry_run(kubeapi, remote, workdir / "final")
        last[:] = [code, report]
        return code == 0

    try:
        wait_for(done, 30, interval=0.2, what="NB and the statuses to converge")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {last}") from None
    return time.monotonic() - start


def _no_traceback(vegd: VegdProcess) -> None:
    text = vegd.log_text()
    assert "Traceback" not in text, text[text.index("Traceback") - 2000:][:6000]


def _checks_can_fail(kubeapi, cluster, remote: str, workdir, foreign) -> None:
    """With vegd stopped: a new pod the selector takes is a pending change to the dry run, a copy
    of one of our policies a duplicate, a changed foreign row a touched one."""
    cluster.add_pod("control", namespace=NAMESPACE, labels={"app": "web"})
    code, report = _dry_run(kubeapi, remote, workdir / "control")
    assert code == 1 and "Address_Set" in report, report
    rows = nb_tables(remote)
    ours = next(r for r in rows["Logical_Router_Policy"]
                if (r["external_ids"] or {}).get("vendor") == "vegd")
    router = next(r["_uuid"] for r in rows["Logical_Router"] if ours["_uuid"] in r["policies"])
    copy = {"priority": ours["priority"], "match": ours["match"], "action": "allow",
            "external_ids": ["map", sorted(ours["external_ids"].items())]}
    theirs = next(r for r in rows["Logical_Router_Policy"]
                  if (r["external_ids"] or {}).get("vendor") == "kube-ovn")
    subprocess.run(["ovsdb-client", "transact", remote, json.dumps(["OVN_Northbound", {
        "op": "insert", "table": "Logical_Router_Policy", "row": copy, "uuid-name": "copy"}, {
        "op": "mutate", "table": "Logical_Router", "where": [["_uuid", "==", ["uuid", router]]],
        "mutations": [["policies", "insert", ["named-uuid", "copy"]]]}, {
        "op": "update", "table": "Logical_Router_Policy",
        "where": [["_uuid", "==", ["uuid", theirs["_uuid"]]]],
        "row": {"external_ids": ["map", [["vendor", "kube-ovn"], ["touched", "yes"]]]}}])],
        check=True, capture_output=True)
    rows = nb_tables(remote)
    assert duplicated_rows(rows)
    assert foreign_rows(rows) != foreign


def test_vegd_run_sigkilled_at_random_moments_during_churn(fresh_ovn, kubeapi, fake_cluster,
                                                           tmp_path):
    """SIGKILL of `vegd run` at random moments while pods and gateways churn (the moments: 0 to
    0.8 s after it took the NB lock, during its takeover resync and the churn's writes); restarted
    each time. After the last restart and the churn's end: NB exact (the dry run), no duplicated
    rows, no other writer's row touched, every gateway's status converged."""
    seed, kills = _seed(), int(os.environ.get("VEGD_CHAOS_KILLS", 4))
    rng = random.Random(seed)
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    foreign = foreign_rows(nb_tables(fresh_ovn.nb_unix))
    churn = Churn(kubeapi, fake_cluster, seed)
    churn.setup()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kubeapi.url)
    vegd = VegdProcess(tmp_path, "vegd", kubeconfig, fresh_ovn).start()
    started = time.monotonic()
    try:
        wait_for(lambda: ACTIVE in vegd.log_text(), 20, what="vegd active")
        churn.start()
        for i in range(kills):
            wait_for(lambda n=i + 1: vegd.log_text().count(ACTIVE) >= n, 20,
                     what=f"vegd active after restart {i}")
            time.sleep(rng.uniform(0.0, 0.8))  # the fault's moment, not a synchronisation
            assert vegd.proc.poll() is None, vegd.log_text()[-3000:]
            vegd.kill()
            vegd.start()
        wait_for(lambda: vegd.log_text().count(ACTIVE) > kills, 20, what="vegd active at last")
        time.sleep(rng.uniform(0.0, 0.8))  # the churn's end, at a random moment too
        churn.stop()
        took = _converge(kubeapi, fake_cluster, fresh_ovn.nb_unix, tmp_path)
        rows = nb_tables(fresh_ovn.nb_unix)
        assert duplicated_rows(rows) == []
        assert foreign_rows(rows) == foreign
        assert vegd.proc.poll() is None
        _no_traceback(vegd)
    finally:
        vegd.stop()
    assert vegd.proc.returncode == 0  # SIGTERM: a clean stop
    _checks_can_fail(kubeapi, fake_cluster, fresh_ovn.nb_unix, tmp_path, foreign)
    print(f"{kills} SIGKILLs in {time.monotonic() - started:.1f} s, churn {dict(churn.ops)}, "
          f"converged {took:.2f} s after the churn stopped")


def test_raft_leader_sigkilled_during_controller_churn(raft_nb, kubeapi, fake_cluster, tmp_path):
    """SIGKILL of the 3-member RAFT NB's leader while `vegd run` follows the churn, five times
    (the killed member restarted each time, so the cluster keeps its majority): vegd keeps
    running (or exits 2 with a message, and is then started again) and never logs a traceback;
    after the churn, NB read through the leader is exact (the dry run), no duplicated rows, no
    other writer's row touched, the statuses converged."""
    remote, pids, directory = raft_nb
    rng = random.Random(_seed())
    subprocess.run(["bash", str(BASE_TOPOLOGY), remote], check=True, capture_output=True)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")

    def leader_socket() -> str:
        i = wait_for(lambda: _leader(directory) + 1, 15, what="a leader") - 1
        return f"unix:{directory}/nb{i}.sock"

    def vegd_on_leader() -> bool:
        """vegd's last connection is to the leader, and a batch committed through it (a
        connection to a member that is not the leader is closed again, once python-ovs has
        read the member's `_Server` row)."""
        lines = vegd.log_text().splitlines()
        last = max((n for n, line in enumerate(lines) if CONNECTED.search(line)), default=-1)
        if last < 0 or f"nb{_leader(directory)}.sock: connected" not in lines[last]:
            return False
        after = lines[last + 1:]
        return not any(LEFT.search(line) for line in after) \
            and any(COMMITTED.search(line) for line in after)

    foreign = foreign_rows(nb_tables(leader_socket()))
    churn = Churn(kubeapi, fake_cluster, rng.randrange(1 << 30))
    churn.setup()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", kubeapi.url)
    vegd = VegdProcess(tmp_path, "vegd", kubeconfig,
                       SimpleNamespace(nb_unix=remote, sb_unix="")).start()
    exits = []
    started = time.monotonic()
    try:
        wait_for(lambda: ACTIVE in vegd.log_text(), 20, what="vegd active")
        churn.start()
        for i in range(5):
            # each kill cuts vegd's own connection: it is on the leader, churn writes going on
            wait_for(vegd_on_leader, 20, what=f"vegd connected to the leader ({i} kills)")
            time.sleep(rng.uniform(0.1, 0.6))  # the fault's moment, not a synchronisation
            victim = _leader(directory)
            dead = pids[victim]
            os.kill(dead, signal.SIGKILL)
            wait_for(lambda pid=dead: not alive(pid), 10, what="the killed member to be gone")
            pids[victim] = _restart_member(directory, victim)
            leader_socket()
            if vegd.proc.poll() is not None:
                exits.append(vegd.proc.returncode)
                assert vegd.proc.returncode == 2 and "vegd run:" in vegd.log_text(), \
                    vegd.log_text()[-3000:]
                vegd.start()
        wait_for(vegd_on_leader, 20, what="vegd connected to the leader at last")
        time.sleep(rng.uniform(0.1, 0.6))  # the churn's end, at a random moment too
        churn.stop()
        took = _converge(kubeapi, fake_cluster, remote, tmp_path)
        rows = nb_tables(leader_socket())
        assert duplicated_rows(rows) == []
        assert foreign_rows(rows) == foreign
        assert vegd.proc.poll() is None
        _no_traceback(vegd)
        # while the members answered "not leader" (an election), python-ovs retried every
        # second instead of doubling its wait up to 8 s (vegd/nb/client.py)
        log = vegd.log_text()
        waits = re.findall(r"waiting ([\d.]+) seconds before reconnect", log)
        assert all(float(w) <= 1 for w in waits), waits
        cut = re.findall(r"connection closed by peer|connection dropped", log)
        assert len(cut) >= 5, "a kill missed vegd's connection"
    finally:
        vegd.stop()
    print(f"5 leader kills in {time.monotonic() - started:.1f} s, vegd exits {exits}, "
          f"churn {dict(churn.ops)}, converged {took:.2f} s after the churn stopped")
