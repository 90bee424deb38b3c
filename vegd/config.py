"""vegd's settings, declared once: every option with its type, range or choices, default and help.

Sources, later wins: the ini file (`--config`, e.g. /etc/vegd/vegd.conf) < environment
(`VEGD_<OPTION>`, and OVN's own `OVN_NB_DB`/`OVN_SB_DB` just below them) < command-line flags.
Every value is checked; an error names the option and where the value came from, and the
commands exit 2. Unknown sections and options in the file are refused (a typo must not silently
fall back to a default). `etc/vegd.conf` and `docs/configuration.md` are generated from OPTIONS
(`vegd config sample`, `vegd config reference`); a test checks they agree.
"""

import configparser
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from vegd.model.quantities import quantity


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Option:
    name: str  # the Settings field, VEGD_<NAME> and --<name-with-dashes>
    section: str
    ini: str  # the option's name in the ini file
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    address: bool = False  # an IP address, or empty
    required: bool = False  # may not be empty
    env: tuple[str, ...] = ()  # further environment variables, below VEGD_<NAME>
    example: str | None = None  # the value written in the sample, when not the default
    pattern: str = ""  # a regular expression the whole value must match

    @property
    def env_var(self) -> str:
        return f"VEGD_{self.name.upper()}"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any, source: str) -> Any:
        def bad(problem: str) -> ConfigError:
            return ConfigError(f"{self.name}: {value!r} from {source}: {problem}")

        if self.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise bad("is not a boolean (true or false)")
        if self.kind in (int, float):
            try:
                number = self.kind(value)
            except (TypeError, ValueError):
                raise bad(f"is not {'an integer' if self.kind is int else 'a number'}") from None
            if (self.minimum is not None and number < self.minimum) or \
                    (self.maximum is not None and number > self.maximum):
                raise bad(f"is outside {_number(self.minimum)}..{_number(self.maximum)}")
            return number
        text = str(value).strip()
        if self.choices:
            text = text.lower()
            if text not in self.choices:
                raise bad(f"is not one of {', '.join(c or '(empty)' for c in self.choices)}")
        if self.required and not text:
            raise bad("may not be empty")
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise bad(f"does not match {self.pattern}")
        if self.address and text:
            try:
                ipaddress.ip_address(text.strip("[]"))
            except ValueError:
                raise bad("is not an IP address") from None
            text = text.strip("[]")
        return text


_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_LABEL}(\.{_LABEL})+"  # an API group: at least two DNS labels
# apimachinery's quantity grammar without the sign (a resource amount is never negative)
_QUANTITY = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE]([+-])?[0-9]+))?"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")  # Kubernetes' spelling

OPTIONS: tuple[Option, ...] = (
    Option("nb_connection", "ovn", "nb_connection", str, "",
           "OVN Northbound database, as OVN writes it: unix:PATH, tcp:IP:PORT or ssl:IP:PORT; "
           "comma-separated members of a clustered database (vegd talks to the leader).",
           env=("OVN_NB_DB",), example="unix:/var/run/ovn/ovnnb_db.sock"),
    Option("sb_connection", "ovn", "sb_connection", str, "",
           "OVN Southbound database (read only: chassis by hostname, for the BFD port). "
           "Empty: none.", env=("OVN_SB_DB",), example="unix:/var/run/ovn/ovnsb_db.sock"),
    Option("ssl_private_key", "ovn", "ssl_private_key", str, "",
           "Private key for ssl: remotes."),
    Option("ssl_certificate", "ovn", "ssl_certificate", str, "",
           "Certificate for ssl: remotes."),
    Option("ssl_ca_cert", "ovn", "ssl_ca_cert", str, "",
           "CA certificate for ssl: remotes."),
    Option("timeout", "ovn", "timeout", float, 10.0,
           "Seconds to wait for a database to answer.", minimum=0.1, maximum=3600),
    Option("bfd_port_mode", "ovn", "bfd_port_mode", str, "stock",
           "stock: make the bfd@<vpc> port work on stock OVN (peer switch and TTL helper, "
           "docs/bfd-port.md); kube-ovn: Kube-OVN's patched OVN runs BFD on the peer-less "
           "port itself.", choices=("stock", "kube-ovn")),
    Option("vendor", "vegd", "vendor", str, "vegd",
           "external_ids:vendor of every row vegd owns; also names the NB lock "
           "vegd_<vendor>.", required=True),
    Option("log_format", "vegd", "log_format", str, "console",
           "console: for people; json: one JSON object a line, for log collectors. Covers "
           "vegd's own lines and those of ovsdbapp, python-ovs, the kubernetes client and "
           "urllib3.", choices=("console", "json")),
    Option("log_level", "vegd", "log_level", str, "info",
           "Lowest level logged. `vegd apply` and `vegd migrate` show python-ovs' connection "
           "lines (connecting..., connected) only at debug; `vegd run` logs them at info.",
           choices=("debug", "info", "warning", "error")),
    Option("health_port", "vegd", "health_port", int, 10667,
           "Port of /livez, /readyz and /metrics; 0: no HTTP server.", minimum=0,
           maximum=65535),
    Option("health_address", "vegd", "health_address", str, "",
           "Address /livez, /readyz and /metrics listen on. Empty: every address of both "
           "families (under hostNetwork that is every node address; the Deployment sets the "
           "pod IP).", address=True),
    Option("kubeconfig", "kubernetes", "kubeconfig", str, "",
           "kubeconfig file. Empty: $KUBECONFIG, else the in-cluster service account."),
    Option("resync_period", "kubernetes", "resync_period", float, 300.0,
           "Seconds between full resyncs (every owner reconciled again, then garbage "
           "collection): repairs NB rows changed behind vegd's back.", minimum=1,
           maximum=86400),
    Option("gateway_image", "kubernetes", "gateway_image", str, "",
           "Image of the gateway pods (the Containerfile's: vegd gateway agent, FRR bfdd, "
           "nftables, iproute2); a VpcEgressGateway's spec.image wins. Empty: a gateway "
           "without spec.image is reported invalid."),
    Option("gateway_image_pull_policy", "kubernetes", "gateway_image_pull_policy", str, "",
           "imagePullPolicy of the gateway container: Always, IfNotPresent or Never. Empty: "
           "the API server's default (Always for a :latest tag, else IfNotPresent).",
           choices=("", *(p.lower() for p in PULL_POLICIES))),
    Option("gateway_cpu_request", "kubernetes", "gateway_cpu_request", str, "50m",
           "CPU request of the gateway container (no CPU limit is set: CFS throttling delays "
           "BFD packets). A VpcEgressGateway's spec.resources replaces all three.",
           required=True, pattern=_QUANTITY),
    Option("gateway_memory_request", "kubernetes", "gateway_memory_request", str, "64Mi",
           "Memory request of the gateway container.", required=True, pattern=_QUANTITY),
    Option("gateway_memory_limit", "kubernetes", "gateway_memory_limit", str, "256Mi",
           "Memory limit of the gateway container.", required=True, pattern=_QUANTITY),
    Option("gateway_agent_port", "kubernetes", "gateway_agent_port", int, 10669,
           "Port of the gateway agent's /livez, /readyz and /metrics in the gateway pods.",
           minimum=1, maximum=65535),
    Option("gateway_agent_bandwidth", "kubernetes", "gateway_agent_bandwidth", bool, True,
           "The gateway agent also enforces spec.bandwidth (tc on its interfaces), for CNIs "
           "that ignore Kube-OVN's rate annotations."),
    Option("gateway_drain_seconds", "kubernetes", "gateway_drain_seconds", int, 3,
           "preStop delay of a gateway pod: time for vegd to take the instance out of NB and "
           "for ovn-controller to update its flows before the pod stops forwarding.",
           minimum=0, maximum=600),
    Option("gateway_termination_grace_period", "kubernetes",
           "gateway_termination_grace_period", int, 10,
           "terminationGracePeriodSeconds of the gateway pods; must be longer than "
           "gateway_drain_seconds (the preStop delay counts against it).", minimum=1,
           maximum=3600),
    Option("api_group", "kubernetes", "api_group", str, "kubeovn.io",
           "API group of the VpcEgressGateways vegd serves: kubeovn.io where no other controller "
           "reconciles them (Kube-OVN before v1.14, or without its VEG controller); vegd.io "
           "beside Kube-OVN's own controller (deploy/vegd-group/, docs/decisions.md).",
           required=True, pattern=_DNS_SUBDOMAIN),
    Option("leader_election", "leader_election", "enabled", bool, True,
           "One active vegd per vendor tag: the holder of the NB lock vegd_<vendor> "
           "(docs/decisions.md). false: no lock, run a single replica only."),
)
BY_NAME = {o.name: o for o in OPTIONS}
SECTIONS = tuple(dict.fromkeys(o.section for o in OPTIONS))


@dataclass
class Settings:
    nb_connection: str = ""
    sb_connection: str = ""
    ssl_private_key: str = ""
    ssl_certificate: str = ""
    ssl_ca_cert: str = ""
    timeout: float = 10.0
    bfd_port_mode: Literal["stock", "kube-ovn"] = "stock"
    vendor: str = "vegd"
    log_format: str = "console"
    log_level: str = "info"
    health_port: int = 10667
    health_address: str = ""
    kubeconfig: str = ""
    resync_period: float = 300.0
    gateway_image: str = ""
    gateway_image_pull_policy: str = ""
    gateway_cpu_request: str = "50m"
    gateway_memory_request: str = "64Mi"
    gateway_memory_limit: str = "256Mi"
    gateway_agent_port: int = 10669
    gateway_agent_bandwidth: bool = True
    gateway_drain_seconds: int = 3
    gateway_termination_grace_period: int = 10
    api_group: str = "kubeovn.io"
    leader_election: bool = True


def load_settings(config: str | None = None, environ: Mapping[str, str] | None = None,
                  **flags: Any) -> Settings:
    """Settings from the file, the environment and flags (keyed by option name; None: unset)."""
    env = os.environ if environ is None else environ
    found: dict[str, tuple[Any, str]] = {}  # name -> (value, where it came from)
    if config:
        found.update(_read_file(config))
    for option in OPTIONS:
        for var in (*reversed(option.env), option.env_var):
            if env.get(var):
                found[option.name] = (env[var], f"environment {var}")
    for name, value in flags.items():
        if value is not None:
            found[name] = (value, f"flag {BY_NAME[name].flag}")
    settings = Settings()
    for name, (value, source) in found.items():
        setattr(settings, name, BY_NAME[name].convert(value, source))
    for option in OPTIONS:  # the defaults obey the rules too (required ones)
        if option.name not in found:
            option.convert(getattr(settings, option.name), "the default")
    if settings.gateway_termination_grace_period <= settings.gateway_drain_seconds:
        raise ConfigError(
            f"gateway_termination_grace_period: {settings.gateway_termination_grace_period} is "
            f"not longer than gateway_drain_seconds {settings.gateway_drain_seconds}: the pod "
            "would be killed during its preStop delay")
    if quantity(settings.gateway_memory_request) > quantity(settings.gateway_memory_limit):
        raise ConfigError(f"gateway_memory_request: {settings.gateway_memory_request} is more "
                          f"than gateway_memory_limit {settings.gateway_memory_limit} (the API "
                          "server would refuse every gateway Deployment)")
    return settings


def _read_file(path: str) -> dict[str, tuple[Any, str]]:
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00none")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: not an ini file: {exc.message}") from None
    by_ini = {(o.section, o.ini): o for o in OPTIONS}
    found: dict[str, tuple[Any, str]] = {}
    for section in parser.sections():
        if section not in SECTIONS:
            raise ConfigError(f"{path}: unknown section [{section}] (known: "
                              f"{', '.join(SECTIONS)})")
        for ini, value in parser.items(section):
            option = by_ini.get((section, ini))
            if option is None:
                known = ", ".join(o.ini for o in OPTIONS if o.section == section)
                raise ConfigError(f"{path}: [{section}] {ini}: unknown option (known in "
                                  f"[{section}]: {known})")
            if value.strip() or option.kind is str:  # an empty number means "the default"
                found[option.name] = (value, f"{path} [{section}] {ini}")
    return found


def default_config_path() -> str | None:
    path = Path("/etc/vegd/vegd.conf")
    return str(path) if path.exists() else None


# -- generated files -----------------------------------------------------------------------------

def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _ini_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _wrap(text: str, prefix: str, width: int = 99) -> list[str]:
    lines, line = [], prefix
    for word in text.split():
        if len(line) + len(word) + 1 > width and line != prefix:
            lines.append(line)
            line = prefix
        line = f"{line} {word}" if line != prefix else f"{prefix}{word}"
    return [*lines, line]


def _constraint(option: Option) -> str:
    if option.choices:
        return "one of " + ", ".join(c or "empty" for c in option.choices)
    if option.minimum is not None or option.maximum is not None:
        return f"{option.kind.__name__} {_number(option.minimum)}..{_number(option.maximum)}"
    if option.address:
        return "IP address or empty"
    return {bool: "true or false", str: "text"}.get(option.kind, option.kind.__name__)


def render_sample() -> str:
    """The text of etc/vegd.conf."""
    out = ["# vegd configuration, generated by `vegd config sample` from vegd/config.py.",
           "# Precedence: this file < environment (VEGD_<OPTION>; OVN_NB_DB, OVN_SB_DB) < flags.",
           "# Unknown sections and options are refused; docs/configuration.md explains each."]
    for section in SECTIONS:
        out += ["", f"[{section}]"]
        for option in (o for o in OPTIONS if o.section == section):
            out += _wrap(f"{option.help} ({_constraint(option)}; default "
                         f"{_ini_value(option.default) or 'empty'})", "# ")
            value = option.example if option.example is not None else _ini_value(option.default)
            out.append(f"{option.ini} = {value}".rstrip())
    return "\n".join(out) + "\n"


def render_reference() -> str:
    """The text of docs/configuration.md."""
    out = ["# Configuration reference", "",
           "Generated by `vegd config reference` from `vegd/config.py`; do not edit by hand.", "",
           "vegd reads an ini file (`--config`, `/etc/vegd/vegd.conf` in the packages and the "
           "ConfigMap `vegd-config` in the cluster), then the environment, then flags; later "
           "wins. A wrong value or an unknown section or option stops `vegd run` and "
           "`vegd apply` with exit code 2 and a message naming the option and where the value "
           "came from, for example:", "",
           "```", "vegd run: configuration: resync_period: '-1' from environment "
           "VEGD_RESYNC_PERIOD: is outside 1..86400", "```", "",
           "`vegd config check --config FILE` validates a file (and the environment) without "
           "starting anything.", ""]
    for section in SECTIONS:
        out += [f"## [{section}]", "", "| option | environment | flag of `vegd run` | type | "
                "default | meaning |", "| --- | --- | --- | --- | --- | --- |"]
        for o in (o for o in OPTIONS if o.section == section):
            env = ", ".join(f"`{v}`" for v in (o.env_var, *o.env))
            default = f"`{_ini_value(o.default)}`" if _ini_value(o.default) else "empty"
            out.append(f"| `{o.ini}` | {env} | `{o.flag}` | {_constraint(o)} | {default} | "
                       f"{o.help} |")
        out.append("")
    return "\n".join(out)


assert {f.name for f in fields(Settings)} == set(BY_NAME), "Settings and OPTIONS disagree"
