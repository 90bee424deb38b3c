"""`vegd migrate` on the seed's gateway1 (ovn-cluster, no BFD) and gateway2 (vpc1, BFD), from
rows shaped exactly as Kube-OVN writes them (kubeovn_rows.py), on a real NB + northd.

After every transaction of the migration, and of `--back`, ovn-trace shows a pod of each
gateway's sources leaving through an instance (never a drop, never the VPC's default route).
Afterwards NB holds exactly what vegd would write from scratch (the same manifests again: no
change; the rows equal a from-scratch `vegd apply` on a second NB), and Kube-OVN's rows are
gone (or kept with --keep-old); `--back` restores Kube-OVN's rows column for column.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from kubeapi.resources import default_registry
from kubeovn_rows import kube_ovn_rows, seed_gateways, write_bfd_port, write_gateway
from ovnstack import OvnStack, wait_for
from scenario import ROOT, Scenario, add_base_topology, pod, seed_objects
from test_fail_closed_trace import EXTERNAL, Tracer, add_lsp, set_sessions
from vegd_harness import InProcessController, write_kubeconfig

from vegd.kube.resources import serve_gateways_in
from vegd.plan.names import owner_hash

INSTANCES = {"ovn-cluster": {"gw12", "gw13"}, "vpc1": {"gw2", "gw3"}}


def _topology(ovn):
    add_base_topology(ovn)
    ovn.nbctl("lr-route-add", "vpc1", "0.0.0.0/0", "192.168.0.254")
    add_lsp(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10")
    add_lsp(ovn, "subnet1", "vnat", "0a:58:c0:a8:00:fe", "192.168.0.254")
    add_lsp(ovn, "subnet1", "gw2", "0a:58:c0:a8:00:02", "192.168.0.2")
    add_lsp(ovn, "subnet1", "gw3", "0a:58:c0:a8:00:03", "192.168.0.3")
    add_lsp(ovn, "ovn-default", "pod5", "0a:58:0a:10:00:05", "10.16.0.5")
    add_lsp(ovn, "ovn-default", "gw12", "0a:58:0a:10:00:0c", "10.16.0.12")
    add_lsp(ovn, "ovn-default", "gw13", "0a:58:0a:10:00:0d", "10.16.0.13")
    return {"vpc1": Tracer(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10",
                           "0a:58:c0:a8:00:01"),
            "ovn-cluster": Tracer(ovn, "ovn-default", "pod5", "0a:58:0a:10:00:05", "10.16.0.5",
                                  "0a:58:0a:10:00:01")}


def _kube_ovn(ovn):
    write_bfd_port(ovn, "vpc1", "10.255.255.255", ["3c8e1b4e-0c0f-4d2a-9e1d-000000000001"])
    for gw in seed_gateways():
        write_gateway(ovn, gw)


def _working(ovn, tracers, when: str) -> None:
    ovn.sync()
    for vpc, tracer in tracers.items():
        for select in (1, 2):
            out = tracer.outputs(EXTERNAL, select=select)
            assert out and out[0] in INSTANCES[vpc], (when, vpc, out)


def _checking_steps(ovn, tracers, steps):
    """A step callback: every source still has its path after each step of the migration."""
    def step(name):
        if name == "written" and ovn.nb_rows("Logical_Router_Static_Route",
                                             "external_ids:vendor=vegd"):
            # gateway2's BFD routes exist now: play ovn-controller, sessions up
            set_sessions(ovn, "bfd@vpc1", {"192.168.0.2": "up", "192.168.0.3": "up"})
        _working(ovn, tracers, name)
        steps.append(name)
    return step


def _is_what_vegd_writes_from_scratch(ovn, scenario, tmp_path, capsys) -> None:
    """The same manifests change nothing, and vegd's rows equal those of a from-scratch apply
    of them on a second NB."""
    capsys.readouterr()
    code, report = scenario.apply(capsys=capsys)
    assert code == 0 and report["transactions"] == 0, report
    scratch = OvnStack(tmp_path / "scratch").start()
    try:
        _topology(scratch)
        assert Scenario(scratch, tmp_path / "s", scenario.objects).apply()[0] == 0
        assert _vegd_rows(ovn) == _vegd_rows(scratch)
    finally:
        scratch.stop()


def _migrate(scenario, state: Path, *extra: str, on_step=None) -> int:
    from vegd.cli import _parser
    from vegd.migrate import run_migrate

    args = _parser().parse_args(["migrate", "-f", str(scenario.write()), "--nb-connection",
                                 scenario.ovn.nb_unix, "--sb-connection", scenario.ovn.sb_unix,
                                 "--state", str(state), *extra])
    return run_migrate(args, on_step)


def _strip(rows: dict[str, list]) -> dict[str, list]:
    """Columns without _uuid/_version (recreated rows get new ones), sorted."""
    return {t: sorted(json.dumps({k: v for k, v in r.items() if k not in ("_uuid", "_version")},
                                 sort_keys=True) for r in rs) for t, rs in rows.items()}


def _vegd_rows(ovn) -> dict[str, list]:
    """vegd's rows, each as its columns with references replaced by what they point at."""
    out = {}
    for table in ("Logical_Router_Policy", "Logical_Router_Static_Route", "BFD", "Address_Set",
                  "Logical_Router_Port", "HA_Chassis_Group", "Logical_Switch"):
        rows = ovn.nb_rows(table, "external_ids:vendor=vegd")
        keep = [{k: v for k, v in r.items() if k not in ("_uuid", "bfd", "ha_chassis_group",
                                                         "ha_chassis", "ports", "status")}
                for r in rows]
        out[table] = sorted(json.dumps(r, sort_keys=True) for r in keep)
    return out


@pytest.mark.parametrize("keep_old", [False, True])
def test_migrate_seed_gateways_and_back(fresh_ovn, tmp_path, capsys, keep_old):
    ovn = fresh_ovn
    tracers = _topology(ovn)
    _kube_ovn(ovn)
    scenario = Scenario(ovn, tmp_path)
    _working(ovn, tracers, "before")
    before_rows = kube_ovn_rows(ovn)
    state = tmp_path / "state.json"

    # dry run: a plan, nothing written
    dump = ovn.nbctl("show") + ovn.nbctl("list", "Logical_Router_Policy")
    assert _migrate(scenario, state) == 0
    out = capsys.readouterr().out
    assert "default/gateway2: rows of vendor kube-ovn" in out and "dry run" in out, out
    assert ovn.nbctl("show") + ovn.nbctl("list", "Logical_Router_Policy") == dump
    assert kube_ovn_rows(ovn) == before_rows

    steps: list[str] = []
    step = _checking_steps(ovn, tracers, steps)

    extra = ("--keep-old",) if keep_old else ("--objects-out", str(tmp_path / "twins"))
    assert _migrate(scenario, state, "--apply", *extra, on_step=step) == 0, capsys.readouterr()
    assert steps == ["adopted", "written"] + ([] if keep_old else ["removed"]) \
        + ["adopted", "written"] + ([] if keep_old else ["removed"])
    _working(ovn, tracers, "after")
    if not keep_old:  # vegd's twins, to `kubectl apply` (vegd.io group, Deployment prefix vegd-)
        twins = list(yaml.safe_load_all((tmp_path / "twins" / "vpc-egress-gateways.yaml")
                                        .read_text()))
        assert sorted((t["apiVersion"], t["metadata"]["name"], t["spec"]["prefix"])
                      for t in twins if t) == [("vegd.io/v1", "gateway1", "vegd-"),
                                               ("vegd.io/v1", "gateway2", "vegd-")]

    # NB is what vegd writes from scratch: the same manifests change nothing ...
    _is_what_vegd_writes_from_scratch(ovn, scenario, tmp_path, capsys)
    # Kube-OVN's gateway rows: gone, or kept as asked; its base policies are never touched
    left = {t: [r for r in rows if "vpc-egress-gateway" in dict(r["external_ids"][1])]
            for t, rows in kube_ovn_rows(ovn).items()}
    expected_left = sum(1 for rows in before_rows.values() for r in rows
                        if "vpc-egress-gateway" in dict(r["external_ids"][1])
                        and not _adopted(r)) if keep_old else 0
    assert sum(map(len, left.values())) == expected_left, left
    assert len(kube_ovn_rows(ovn)["Logical_Router_Policy"]) == 3 + (2 + 6 if keep_old else 0)

    # back: Kube-OVN's rows again, column for column; vegd's rows gone; a working path throughout
    steps.clear()
    assert _migrate(scenario, state, "--back", on_step=lambda n: (_working(ovn, tracers, n),
                                                                  steps.append(n))) == 0
    assert steps == ["restored", "removed"] * 2
    assert _strip(kube_ovn_rows(ovn)) == _strip(before_rows)
    assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")
    assert not ovn.nb_rows("BFD", "external_ids:vendor=vegd")
    assert not ovn.nb_rows("Logical_Router_Port", "external_ids:vendor=vegd")


def _adopted(row) -> bool:
    return "dst_ip" in row  # BFD rows are adopted, never left behind


def _selector_scenario(ovn, tmp_path):
    """The seed's gateways with selectors only (no policies), Kube-OVN-shaped: an empty `.ipv4`
    set, the Port_Group VEG.<h> of the selected pod (pod5, pod1) and policies on `$VEG.<h>_ip4`."""
    scenario = Scenario(ovn, tmp_path)
    for gw in ("gateway1", "gateway2"):
        spec = scenario.find("VpcEgressGateway", gw)["spec"]
        del spec["policies"]
        spec["selectors"] = [{"podSelector": {"matchLabels": {"app": "a"}}}]
    scenario.objects += [pod("pod5", "10.16.0.5", labels={"app": "a"}, switch="ovn-default"),
                         pod("pod1", "192.168.0.10", labels={"app": "a"}, switch="subnet1")]
    write_bfd_port(ovn, "vpc1", "10.255.255.255", ["3c8e1b4e-0c0f-4d2a-9e1d-000000000001"])
    for gw, port in zip(seed_gateways(), ("pod5", "pod1"), strict=True):
        gw.sources4, gw.selected_ports = [], [port]
        write_gateway(ovn, gw)
    return scenario


@pytest.mark.parametrize("keep_old", [False, True])
def test_migrate_selector_gateways_and_back(fresh_ovn, tmp_path, capsys, keep_old):
    """gateway1 (policy mode): Kube-OVN's Port_Group VEG.<h> gives way to vegd's Address_Set
    VEG.<h>_ip4 in one transaction ("swapped"), also with --keep-old; gateway2 (BFD, route mode)
    needs no such set: its group goes with Kube-OVN's other rows. A working path throughout."""
    ovn = fresh_ovn
    tracers = _topology(ovn)
    scenario = _selector_scenario(ovn, tmp_path)
    h1 = owner_hash("default/gateway1")
    _working(ovn, tracers, "before")
    before_rows = kube_ovn_rows(ovn)
    assert sorted(r["name"] for r in before_rows["Port_Group"]) == sorted(
        f"VEG.{owner_hash(k)}" for k in ("default/gateway1", "default/gateway2"))
    state = tmp_path / "state.json"
    assert _migrate(scenario, state) == 0
    out = capsys.readouterr().out
    assert f"replace Port_Group VEG.{h1} by vegd's address set(s) VEG.{h1}_ip4" in out, out
    assert kube_ovn_rows(ovn) == before_rows

    steps: list[str] = []
    step = _checking_steps(ovn, tracers, steps)

    extra = ("--keep-old",) if keep_old else ()
    assert _migrate(scenario, state, "--apply", *extra, on_step=step) == 0, capsys.readouterr()
    removed = [] if keep_old else ["removed"]
    assert steps == ["adopted", "swapped", "written", *removed, "adopted", "written", *removed]
    _working(ovn, tracers, "after")
    sets = {r["name"]: r for r in ovn.nb_rows("Address_Set", "external_ids:vendor=vegd")}
    assert sets[f"VEG.{h1}_ip4"]["addresses"] == "10.16.0.5", sets
    groups = [r["name"] for r in kube_ovn_rows(ovn)["Port_Group"]]
    assert groups == ([f"VEG.{owner_hash('default/gateway2')}"] if keep_old else []), groups
    _is_what_vegd_writes_from_scratch(ovn, scenario, tmp_path, capsys)

    steps.clear()
    assert _migrate(scenario, state, "--back", on_step=lambda n: (_working(ovn, tracers, n),
                                                                  steps.append(n))) == 0
    assert steps == ["restored", "removed"] * 2
    assert _strip(kube_ovn_rows(ovn)) == _strip(before_rows)  # the groups with their ports
    assert not ovn.nb_rows("Address_Set", "external_ids:vendor=vegd")
    assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")


def test_migrate_refuses_bad_input_and_writes_nothing(fresh_ovn, tmp_path, capsys):
    """A gateway vegd would refuse, or one not in the source: exit 1, no row and no state."""
    ovn = fresh_ovn
    _topology(ovn)
    _kube_ovn(ovn)
    scenario = Scenario(ovn, tmp_path)
    before = kube_ovn_rows(ovn)
    assert _migrate(scenario, tmp_path / "s.json", "--apply", "default/nope") == 1
    assert "default/nope" in capsys.readouterr().err
    scenario.find("VpcEgressGateway", "gateway1")["spec"]["selectors"] = [
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}}]
    assert _migrate(scenario, tmp_path / "s.json", "--apply") == 1
    assert "selectors" in capsys.readouterr().err
    assert kube_ovn_rows(ovn) == before and not (tmp_path / "s.json").exists()
    assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")


# -- from the API server ---------------------------------------------------------------------

VEGD_CRD = ROOT / "deploy" / "vegd-group" / "vpc-egress-gateway.yaml"
KUBECTL = shutil.which("kubectl")
FINALIZER = "vegd.kubeovn.io/nb-rows"


@pytest.fixture
def cluster_api(tmp_path):
    """The test API server with Kube-OVN's and vegd's VpcEgressGateway CRDs and the seed's
    objects as Kube-OVN runs them (kubeovn.io gateways, their pods, Vpc, Subnets, nodes)."""
    from kubeapi.fixture import KubeApi

    reg = default_registry()
    reg.add_crd(yaml.safe_load(VEGD_CRD.read_text()))
    api = KubeApi(reg)
    try:
        api.create_all(o for o in seed_objects()
                       if not (o["kind"] == "Namespace" and o["metadata"]["name"] == "default"))
        yield api, write_kubeconfig(tmp_path / "kubeconfig", api.url)
    finally:
        api.close()
        serve_gateways_in("kubeovn.io")  # vegd's controller in vegd.io changed it process-wide


def _kubectl(kubeconfig, *args: str) -> str:
    proc = subprocess.run([KUBECTL or "kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cluster_migrate(ovn, kubeconfig, state: Path, *extra: str, on_step=None) -> int:
    from vegd.cli import _parser
    from vegd.migrate import run_migrate

    args = _parser().parse_args(["migrate", "--kubeconfig", str(kubeconfig), "--nb-connection",
                                 ovn.nb_unix, "--sb-connection", ovn.sb_unix, "--state",
                                 str(state), *extra])
    return run_migrate(args, on_step)


def _twins(api) -> list[dict]:
    return [o for o in api.store.list(api._type_of(
        {"apiVersion": "vegd.io/v1", "kind": "VpcEgressGateway"}), None, lambda _o: True)["items"]]


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is missing")
@pytest.mark.parametrize("vegd_running", [False, True], ids=["alone", "vegd-running"])
def test_migrate_from_the_cluster_creates_the_twins_and_back(fresh_ovn, cluster_api, tmp_path,
                                                             capsys, vegd_running):
    """Without -f the gateways, pods, Vpc, Subnets and nodes come from the API server; --apply
    then creates vegd's twins there (kubectl shows them next to Kube-OVN's objects, which stay),
    --back deletes exactly those; NB as with -f, a working path after every step. With vegd's
    controller running in vegd.io: it takes the twins over without changing a row, and --back
    waits for its finalizer, after which it writes nothing again."""
    ovn = fresh_ovn
    api, kubeconfig = cluster_api
    tracers = _topology(ovn)
    _kube_ovn(ovn)
    before_rows = kube_ovn_rows(ovn)
    state = tmp_path / "state.json"
    assert _cluster_migrate(ovn, kubeconfig, state) == 0
    out = capsys.readouterr().out
    assert "default/gateway2: rows of vendor kube-ovn" in out and "4. create vegd's twin" in out
    assert kube_ovn_rows(ovn) == before_rows and not _twins(api) and not state.exists()

    def step(name):
        if name == "written" and ovn.nb_rows("Logical_Router_Static_Route",
                                             "external_ids:vendor=vegd"):
            set_sessions(ovn, "bfd@vpc1", {"192.168.0.2": "up", "192.168.0.3": "up"})
        _working(ovn, tracers, name)

    assert _cluster_migrate(ovn, kubeconfig, state, "--apply", on_step=step) == 0, \
        capsys.readouterr()
    listed = _kubectl(kubeconfig, "get", "vpc-egress-gateways.vegd.io", "-A", "-o",
                      "jsonpath={range .items[*]}{.metadata.name} {.spec.prefix} "
                      "{.metadata.annotations.vegd\\.io/migrated-from}{'\\n'}{end}")
    assert listed.splitlines() == ["gateway1 vegd- kubeovn.io/v1 default/gateway1",
                                   "gateway2 vegd- kubeovn.io/v1 default/gateway2"], listed
    originals = _kubectl(kubeconfig, "get", "vpc-egress-gateways.kubeovn.io", "-o", "name")
    assert originals.split() == ["vpcegressgateway.kubeovn.io/gateway1",
                                 "vpcegressgateway.kubeovn.io/gateway2"], originals
    assert not [r for r in kube_ovn_rows(ovn)["Logical_Router_Policy"]
                if "vpc-egress-gateway" in dict(r["external_ids"][1])]
    saved = json.loads(state.read_text())
    assert sorted(t["name"] for t in saved["twins"]) == ["gateway1", "gateway2"]

    vegd = None
    if vegd_running:
        migrated = _vegd_rows(ovn)
        vegd = InProcessController(api, ovn, api_group="vegd.io").start()
        wait_for(lambda: vegd.idle() and all(
            FINALIZER in (t["metadata"].get("finalizers") or []) for t in _twins(api)), 20,
            what="vegd serving both twins")
        assert _vegd_rows(ovn) == migrated  # what migrate wrote is what vegd writes
        _working(ovn, tracers, "vegd running")
    capsys.readouterr()
    steps = []
    try:
        # Kube-OVN's rows beside vegd's, the twins deleted (a running vegd's finalizer removes
        # its rows), the rest restored: ovn-trace after each, also with vegd's rows gone
        def back_step(name):
            _working(ovn, tracers, name)
            steps.append(name)
            if vegd is not None and steps.count("twin deleted") == 2:  # vegd removed its rows
                assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")
                assert not ovn.nb_rows("Logical_Router_Static_Route", "external_ids:vendor=vegd")

        assert _cluster_migrate(ovn, kubeconfig, state, "--back", on_step=back_step) == 0
        assert steps == ["beside"] * 2 + ["twin deleted"] * 2 + ["restored", "removed"] * 2
        if vegd is not None:
            wait_for(vegd.idle, 20, what="vegd idle after --back")
    finally:
        if vegd is not None:
            vegd.stop()
    assert "deleted vegd's twin" in capsys.readouterr().out
    assert _kubectl(kubeconfig, "get", "vpc-egress-gateways.vegd.io", "-A", "-o", "name") == ""
    assert len(_kubectl(kubeconfig, "get", "vpc-egress-gateways.kubeovn.io", "-o",
                        "name").split()) == 2
    assert _strip(kube_ovn_rows(ovn)) == _strip(before_rows)
    assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")


def test_migrate_from_the_cluster_refuses_and_writes_nothing(fresh_ovn, cluster_api, tmp_path,
                                                             capsys):
    """A vegd.io object of a twin's name that this migration did not make, an invalid gateway,
    an API server that cannot be reached: exit 1 (2 unreachable), no NB row, no object, no
    state."""
    ovn = fresh_ovn
    api, kubeconfig = cluster_api
    _topology(ovn)
    _kube_ovn(ovn)
    before = kube_ovn_rows(ovn)
    state = tmp_path / "state.json"
    theirs = api.create({"apiVersion": "vegd.io/v1", "kind": "VpcEgressGateway",
                         "metadata": {"name": "gateway2", "namespace": "default"},
                         "spec": {"vpc": "vpc1", "externalSubnet": "macvlan1",
                                  "policies": [{"snat": True, "ipBlocks": ["192.168.0.0/24"]}]}})
    assert _cluster_migrate(ovn, kubeconfig, state, "--apply") == 1
    assert "not this migration's twin" in capsys.readouterr().err
    assert [t["metadata"]["uid"] for t in _twins(api)] == [theirs["metadata"]["uid"]]
    api.store.delete(api._type_of(theirs), "default", "gateway2")

    gw1 = api.get("kubeovn.io/v1", "VpcEgressGateway", "gateway1", "default")
    gw1["spec"]["externalSubnet"] = "no-such-subnet"
    api.store.update(api._type_of(gw1), "default", "gateway1", gw1)
    assert _cluster_migrate(ovn, kubeconfig, state, "--apply") == 1
    assert "gateway1" in capsys.readouterr().err
    # ... but the other gateway, asked for by name, is not held up by it (dry run)
    assert _cluster_migrate(ovn, kubeconfig, state, "default/gateway2") == 0

    unreachable = write_kubeconfig(tmp_path / "gone", "http://127.0.0.1:9")
    assert _cluster_migrate(ovn, unreachable, state, "--apply") == 2
    assert "kubernetes" in capsys.readouterr().err
    assert kube_ovn_rows(ovn) == before and not state.exists() and not _twins(api)
    assert not ovn.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")
