"""Settings: `etc/vegd.conf` (ini) < environment (VEGD_*) < command-line flags."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

# setting -> (ini section, ini option); the environment variable is VEGD_<SETTING upper-cased>
_SOURCES = {
    "nb_connection": ("ovn", "nb_connection"),
    "sb_connection": ("ovn", "sb_connection"),
    "ssl_private_key": ("ovn", "ssl_private_key"),
    "ssl_certificate": ("ovn", "ssl_certificate"),
    "ssl_ca_cert": ("ovn", "ssl_ca_cert"),
    "timeout": ("ovn", "timeout"),
    "bfd_port_mode": ("ovn", "bfd_port_mode"),
    "vendor": ("vegd", "vendor"),
    "log_format": ("vegd", "log_format"),
    "log_level": ("vegd", "log_level"),
    "kubeconfig": ("kubernetes", "kubeconfig"),
    "resync_period": ("kubernetes", "resync_period"),
    "gateway_image": ("kubernetes", "gateway_image"),
    "leader_election": ("leader_election", "enabled"),
    "health_port": ("vegd", "health_port"),
    "health_address": ("vegd", "health_address"),
}


@dataclass
class Settings:
    nb_connection: str = ""
    sb_connection: str = ""
    ssl_private_key: str = ""
    ssl_certificate: str = ""
    ssl_ca_cert: str = ""
    timeout: float = 10.0
    bfd_port_mode: str = "stock"
    vendor: str = "vegd"
    log_format: str = "console"
    log_level: str = "info"
    kubeconfig: str = ""
    resync_period: float = 300.0
    gateway_image: str = ""
    leader_election: bool = True
    health_port: int = 10667
    health_address: str = ""


class ConfigError(ValueError):
    pass


def load_settings(config: str | None = None, environ: dict[str, str] | None = None,
                  **flags: Any) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config:
        parser = configparser.ConfigParser()
        if not parser.read(config):
            raise ConfigError(f"{config}: cannot read the configuration file")
        for name, (section, option) in _SOURCES.items():
            if parser.has_option(section, option) and parser.get(section, option).strip():
                values[name] = parser.get(section, option).strip()
    # ovn-nbctl's own variables, then ours
    for name, var in (("nb_connection", "OVN_NB_DB"), ("sb_connection", "OVN_SB_DB")):
        if env.get(var):
            values[name] = env[var]
    for name in _SOURCES:
        if env.get(f"VEGD_{name.upper()}"):
            values[name] = env[f"VEGD_{name.upper()}"]
    values.update({k: v for k, v in flags.items() if v is not None})

    settings = Settings()
    types = {f.name: f.type for f in fields(Settings)}
    for name, value in values.items():
        if name not in types:
            continue
        try:
            setattr(settings, name, _convert(str(types[name]), value))
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a valid {types[name]}") from None
    if settings.bfd_port_mode not in ("stock", "kube-ovn"):
        raise ConfigError(f"bfd_port_mode: {settings.bfd_port_mode!r} is not stock or kube-ovn")
    return settings


def _convert(kind: str, value: Any) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
            raise ValueError(value)
        return text in ("true", "yes", "1", "on")
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return str(value)


def default_config_path() -> str | None:
    path = Path("/etc/vegd/vegd.conf")
    return str(path) if path.exists() else None
