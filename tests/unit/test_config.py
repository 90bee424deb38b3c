"""vegd/config.py: every value checked, errors name the option and its source (exit 2), unknown
options refused, and the shipped sample and reference are what the module generates."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import structlog

from vegd import cli, logs
from vegd.config import ConfigError, load_settings, render_reference, render_sample

ROOT = Path(__file__).resolve().parents[2]


def test_etc_vegd_conf_is_the_generated_sample():
    assert (ROOT / "etc/vegd.conf").read_text() == render_sample(), \
        "regenerate with: vegd config sample > etc/vegd.conf"


def test_configuration_reference_is_generated():
    assert (ROOT / "docs/configuration.md").read_text() == render_reference(), \
        "regenerate with: vegd config reference > docs/configuration.md"


def test_the_sample_loads_as_the_defaults_plus_its_examples():
    settings = load_settings(str(ROOT / "etc/vegd.conf"), environ={})
    assert settings.nb_connection == "unix:/var/run/ovn/ovnnb_db.sock"
    assert settings.resync_period == 300 and settings.health_port == 10667
    assert settings.leader_election is True and settings.bfd_port_mode == "stock"


@pytest.mark.parametrize(("env", "argv", "words"), [
    ({"VEGD_RESYNC_PERIOD": "-1"}, [], ["resync_period", "environment VEGD_RESYNC_PERIOD",
                                        "outside 1..86400"]),
    ({"VEGD_LOG_LEVEL": "loud"}, [], ["log_level", "VEGD_LOG_LEVEL", "debug, info"]),
    ({"VEGD_LOG_FORMAT": "xml"}, [], ["log_format", "console, json"]),
    ({}, ["--health-port", "99999"], ["health_port", "flag --health-port", "0..65535"]),
    ({}, ["--health-port", "ten"], ["health_port", "not an integer"]),
    ({}, ["--health-address", "every"], ["health_address", "not an IP address"]),
    ({}, ["--leader-election", "maybe"], ["leader_election", "not a boolean"]),
    ({}, ["--timeout", "0"], ["timeout", "outside 0.1..3600"]),
    ({"VEGD_BFD_PORT_MODE": "patched"}, [], ["bfd_port_mode", "stock, kube-ovn"]),
])
def test_bad_values_exit_2_naming_the_option_and_source(monkeypatch, capsys, env, argv, words):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["run", *argv]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


@pytest.mark.parametrize(("text", "words"), [
    ("[ovn]\nnb_conection = unix:/x\n", ["[ovn] nb_conection: unknown option",
                                         "nb_connection"]),
    ("[ovsdb]\nnb_connection = unix:/x\n", ["unknown section [ovsdb]"]),
    ("nb_connection = unix:/x\n", ["not an ini file"]),
    ("[kubernetes]\nresync_period = 0.5\n", ["resync_period", "[kubernetes] resync_period",
                                             "outside 1..86400"]),
])
def test_bad_files_exit_2_naming_file_and_option(tmp_path, capsys, text, words):
    path = tmp_path / "vegd.conf"
    path.write_text(text)
    for command in (["run"], ["apply", "-f", str(tmp_path)], ["config", "check"]):
        assert cli.main([*command, "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert str(path) in err and all(w in err for w in words), err


def test_precedence_file_environment_flag(tmp_path):
    path = tmp_path / "vegd.conf"
    path.write_text("[ovn]\nnb_connection = unix:/from-file\ntimeout = 5\n"
                    "[kubernetes]\nresync_period = 60\n")
    env = {"OVN_NB_DB": "tcp:192.0.2.1:6641", "VEGD_TIMEOUT": "7"}
    s = load_settings(str(path), environ=env, resync_period="30")
    assert (s.nb_connection, s.timeout, s.resync_period) == ("tcp:192.0.2.1:6641", 7.0, 30.0)
    s = load_settings(str(path), environ={**env, "VEGD_NB_CONNECTION": "unix:/from-env"})
    assert s.nb_connection == "unix:/from-env"
    with pytest.raises(ConfigError, match="vendor: '' from flag --vendor: may not be empty"):
        load_settings(None, environ={}, vendor="")


def test_one_json_stream_for_vegd_and_the_libraries(capsys):
    import ovs.vlog

    import vegd.nb.client  # noqa: F401  (routes python-ovs' log into stdlib logging)

    logs.configure("json", "info")
    try:
        structlog.get_logger("vegd.test").info("own line", key="value")
        logging.getLogger("ovsdbapp.backend.ovs_idl").warning("library line %d", 1)
        logging.getLogger("urllib3.connectionpool").warning("retrying")
        logging.getLogger("kubernetes.client.rest").info("chatter")  # below their level
        ovs.vlog.Vlog("reconnect").info("tcp:192.0.2.1:6641: connecting...")
        try:
            raise ValueError("boom")
        except ValueError:
            structlog.get_logger("vegd.test").exception("failed")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        logs.configure("console", "info")
    by_event = {line["event"]: line for line in lines}
    assert by_event["own line"]["key"] == "value" and by_event["own line"]["level"] == "info"
    assert by_event["library line 1"]["logger"] == "ovsdbapp.backend.ovs_idl"
    assert by_event["retrying"]["level"] == "warning"
    assert "chatter" not in by_event
    assert "tcp:192.0.2.1:6641: connecting..." in by_event
    assert "ValueError: boom" in by_event["failed"]["exception"]
    assert all("timestamp" in line for line in lines)


def test_console_renders_library_records_too(capsys):
    logs.configure("console", "warning")
    logging.getLogger("ovsdbapp").warning("lost the leader")
    structlog.get_logger("vegd").info("hidden")
    err = capsys.readouterr().err
    assert "lost the leader" in err and "[warning  ]" in err and "hidden" not in err


def test_one_shot_commands_hide_the_connection_chatter_unless_debugging(capsys):
    import ovs.vlog

    import vegd.nb.client  # noqa: F401

    try:
        for level, shown in (("info", False), ("debug", True)):
            logs.configure("console", level, one_shot=True)
            ovs.vlog.Vlog("reconnect").info("unix:/x/nb.sock: connecting...")
            ovs.vlog.Vlog("reconnect").warn("unix:/x/nb.sock: connection dropped")
            err = capsys.readouterr().err
            assert ("connecting..." in err) is shown, level
            assert "connection dropped" in err
    finally:
        logs.configure("console", "info")


def test_gateway_workload_knobs_reach_the_deployment():
    from vegd.run import workload_options
    from vegd.workload.deployment import WorkloadOptions

    defaults = workload_options(load_settings(environ={}), "kubeovn.io/v1")
    assert defaults == WorkloadOptions(api_version="kubeovn.io/v1")  # the same defaults
    tuned = workload_options(load_settings(environ={
        "VEGD_GATEWAY_IMAGE_PULL_POLICY": "ifNotPresent", "VEGD_GATEWAY_MEMORY_LIMIT": "1Gi",
        "VEGD_GATEWAY_DRAIN_SECONDS": "5", "VEGD_GATEWAY_TERMINATION_GRACE_PERIOD": "30",
        "VEGD_GATEWAY_AGENT_BANDWIDTH": "false"}), "vegd.io/v1")
    assert tuned.image_pull_policy == "IfNotPresent"
    assert tuned.resources["limits"] == {"memory": "1Gi"}
    assert (tuned.drain_seconds, tuned.termination_grace_period) == (5, 30)
    assert tuned.agent_bandwidth is False


@pytest.mark.parametrize("env, message", [
    ({"VEGD_GATEWAY_DRAIN_SECONDS": "10"}, "is not longer than gateway_drain_seconds 10"),
    ({"VEGD_GATEWAY_MEMORY_REQUEST": "512Mi"}, "is more than gateway_memory_limit 256Mi"),
    ({"VEGD_GATEWAY_CPU_REQUEST": "-1"}, "gateway_cpu_request: '-1' from environment"),
    ({"VEGD_GATEWAY_IMAGE_PULL_POLICY": "sometimes"}, "is not one of (empty), always"),
])
def test_gateway_workload_knobs_are_checked(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(environ=env)
