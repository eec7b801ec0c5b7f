"""Effective configuration: defaults < YAML file < ``RNN_*`` environment < command-line flags.

Why one table (``SETTINGS``): every setting is declared once with its type, default,
environment variable and help, so validation, ``rnn config show`` (which prints each value
with where it came from) and ``docs/CONFIG.md`` cannot drift apart.

The YAML file is nested by section (``node:``, ``dht:`` ...).  Unknown keys and wrong
types are errors naming the key, the file and the line.  Environment variables are
``RNN_<SECTION>_<KEY>``, except for the ``node`` section, which drops its section name
(``RNN_PORT``, ``RNN_DATA_DIR``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
import yaml

from rnn_tui.errors import ConfigError

APP_NAME = "remote-network"
DEFAULT_PORT = 30609
DEFAULT_TOPIC = "remote-network-mesh"
PUBLIC_BOOTSTRAP = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
]
LOG_LEVELS = ("debug", "info", "warning", "error")


def default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_log_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "logs"


# -- value parsers: (raw, from_text) -> value; raise ValueError with a reason -------------------
def _int(lo: int, hi: int) -> Callable[[Any, bool], int]:
    def parse(raw: Any, from_text: bool) -> int:
        if from_text and isinstance(raw, str):
            try:
                raw = int(raw.strip())
            except ValueError:
                raise ValueError(f"expected an integer, got {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected an integer, got {type(raw).__name__} {raw!r}")
        if not lo <= raw <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {raw}")
        return raw
    return parse


def _float(lo: float, hi: float) -> Callable[[Any, bool], float]:
    def parse(raw: Any, from_text: bool) -> float:
        if from_text and isinstance(raw, str):
            try:
                raw = float(raw.strip())
            except ValueError:
                raise ValueError(f"expected a number, got {raw!r}") from None
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ValueError(f"expected a number, got {type(raw).__name__} {raw!r}")
        if not lo <= raw <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {raw}")
        return float(raw)
    return parse


def _bool(raw: Any, from_text: bool) -> bool:
    if from_text and isinstance(raw, str):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {raw!r}")
    if not isinstance(raw, bool):
        raise ValueError(f"expected true or false, got {type(raw).__name__} {raw!r}")
    return raw


def _str(raw: Any, from_text: bool) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected a string, got {type(raw).__name__} {raw!r}")
    return raw


def _choice(*choices: str) -> Callable[[Any, bool], str]:
    def parse(raw: Any, from_text: bool) -> str:
        value = _str(raw, from_text).strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value
    return parse


def _auto_bool(raw: Any, from_text: bool) -> str:
    """``auto``, ``true`` or ``false``; YAML booleans and the usual words are accepted."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str) and raw.strip().lower() == "auto":
        return "auto"
    try:
        return "true" if _bool(raw, True) else "false"
    except ValueError:
        raise ValueError(f"expected auto, true or false, got {raw!r}") from None


def _optional_path(raw: Any, from_text: bool) -> Path | None:
    if raw is None or (from_text and raw == ""):
        return None
    return Path(os.path.expanduser(_str(raw, from_text)))


def _path(raw: Any, from_text: bool) -> Path:
    return Path(os.path.expanduser(_str(raw, from_text)))


def parse_hostport(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ``ValueError`` names the defect."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    if not 1 <= number <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host, number


def _hostports(raw: Any, from_text: bool) -> list[str]:
    if from_text and isinstance(raw, str):
        items = [p for p in (s.strip() for s in raw.split(",")) if p]
    elif isinstance(raw, list):
        items = raw
    elif raw is None:
        items = []
    else:
        raise ValueError(f"expected a list of HOST:PORT, got {type(raw).__name__}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"expected HOST:PORT strings, got {item!r}")
        parse_hostport(item)
        out.append(item.strip())
    return out


@dataclass(frozen=True, slots=True)
class Setting:
    key: str                       # "section.name"
    parse: Callable[[Any, bool], Any]
    default: Callable[[], Any]
    help: str
    flag: str | None = None        # argparse dest that overrides it

    @property
    def env(self) -> str:
        section, name = self.key.split(".", 1)
        parts = [name] if section == "node" else [section, name]
        return "RNN_" + "_".join(parts).upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("node.data_dir", _path, default_data_dir, "where the keystore, database and job dirs live", "data_dir"),
    Setting("node.log_dir", _path, default_log_dir, "where log files are written", "log_dir"),
    Setting("node.log_level", _choice(*LOG_LEVELS), lambda: "info", "debug, info, warning or error", "log_level"),
    Setting("node.listen_host", _str, lambda: "0.0.0.0", "address the one UDP socket binds (DHT + QUIC)", "listen_host"),
    Setting("node.port", _int(0, 65535), lambda: DEFAULT_PORT, "UDP port shared by DHT and QUIC (0 = any free port)", "port"),
    Setting("node.ipv6", _bool, lambda: True, "also listen on IPv6 (dual stack) where the host has it"),
    Setting("dht.bootstrap", _hostports, lambda: list(PUBLIC_BOOTSTRAP), "DHT bootstrap nodes, HOST:PORT", "bootstrap"),
    Setting("dht.topic", _str, lambda: DEFAULT_TOPIC, "the mesh topic; its sha1 is the DHT infohash peers announce"),
    Setting("dht.read_only", _auto_bool, lambda: "auto", "BEP 43 read-only mode: auto = while a dial-back shows we are behind a filtering NAT"),
    Setting("keystore.passphrase_file", _optional_path, lambda: None, "file holding the keystore passphrase", "passphrase_file"),
    Setting("keystore.kdf_cost", _choice("moderate", "interactive"), lambda: "moderate", "Argon2id cost for new keystores"),
    Setting("relay.enabled", _choice("auto", "true", "false"), lambda: "auto", "offer relay service: auto = when publicly reachable", "relay"),
    Setting("relay.max_reservations", _int(0, 100_000), lambda: 128, "reservations a relay accepts"),
    Setting("relay.max_circuits", _int(0, 100_000), lambda: 64, "concurrent relayed circuits"),
    Setting("nat.check_interval", _float(0.5, 3600.0), lambda: 60.0, "seconds between network-change checks (local addresses, fresh observations, relays)"),
    Setting("executor.enabled", _bool, lambda: True, "accept jobs from other peers"),
    Setting("executor.max_concurrent_jobs", _int(0, 1024), lambda: 4, "jobs run at once"),
    Setting("executor.max_memory_mb", _int(16, 1_048_576), lambda: 2048, "memory cap per job"),
    Setting("executor.max_cpus", _float(0.05, 1024.0), lambda: 2.0, "CPU cap per job"),
    Setting("executor.max_pids", _int(8, 1_000_000), lambda: 256, "process cap per job"),
    Setting("executor.allow_network", _bool, lambda: False, "let services that declare a need for network have it"),
    Setting("executor.allow_command_override", _bool, lambda: False, "let other peers replace a service's command (workflow args)"),
    Setting("executor.job_timeout", _int(1, 7 * 86400), lambda: 3600, "default wall-clock limit per job, seconds"),
    Setting("workflow.heartbeat_s", _float(0.1, 3600.0), lambda: 5.0, "executor heartbeat interval; two missed beats fail or retry a job"),
    Setting("workflow.finished_retain_s", _float(0.0, 7 * 86400.0), lambda: 600.0, "how long a finished run stays in memory; then it is read from the store"),
    Setting("tui.theme", _str, lambda: "textual-dark", "Textual theme name"),
    Setting("tui.mouse", _bool, lambda: True, "enable mouse support"),
)
_BY_KEY = {s.key: s for s in SETTINGS}
_BY_FLAG = {s.flag: s for s in SETTINGS if s.flag}


@dataclass(frozen=True, slots=True)
class Config:
    """Effective values plus where each came from (``default``, ``file:line``, ``env VAR``, ``flag``)."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    config_file: Path
    config_dir: Path
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    # convenient typed accessors for the hot ones
    @property
    def data_dir(self) -> Path:
        return Path(self.values["node.data_dir"])

    @property
    def log_dir(self) -> Path:
        return Path(self.values["node.log_dir"])

    @property
    def port(self) -> int:
        return int(self.values["node.port"])

    @property
    def listen_host(self) -> str:
        return str(self.values["node.listen_host"])

    @property
    def bootstrap(self) -> list[tuple[str, int]]:
        return [parse_hostport(s) for s in self.values["dht.bootstrap"]]

    @property
    def keystore_path(self) -> Path:
        return self.data_dir / "identity.key"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "node.db"

    @property
    def control_socket_path(self) -> Path:
        return self.data_dir / "control.sock"

    def as_rows(self) -> list[tuple[str, str, str]]:
        return [(k, _render(self.values[k]), self.sources[k]) for k in _BY_KEY]


def _render(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else "(none)"
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_file(path: Path) -> dict[str, tuple[Any, int]]:
    """Parse the YAML file into {key: (value, line)}, with errors naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=str(path)) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", source=str(path), line=line) from None
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError("the config file must be a mapping of sections", source=str(path),
                          line=root.start_mark.line + 1)
    out: dict[str, tuple[Any, int]] = {}
    constructor = yaml.SafeLoader("")
    sections = {k.split(".", 1)[0] for k in _BY_KEY}
    for sec_node, body in root.value:
        line = sec_node.start_mark.line + 1
        section = sec_node.value
        if section not in sections:
            raise ConfigError(f"unknown section {section!r} (known: {', '.join(sorted(sections))})",
                              key=str(section), source=str(path), line=line)
        if not isinstance(body, yaml.MappingNode):
            raise ConfigError(f"section {section!r} must be a mapping", key=section,
                              source=str(path), line=body.start_mark.line + 1)
        for key_node, value_node in body.value:
            key = f"{section}.{key_node.value}"
            kline = key_node.start_mark.line + 1
            if key not in _BY_KEY:
                raise ConfigError(f"unknown key {key!r}", key=key, source=str(path), line=kline)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", key=key, source=str(path), line=kline)
            value = constructor.construct_document(value_node)
            out[key] = (value, value_node.start_mark.line + 1)
    return out


def load_config(
    *,
    config_file: Path | None = None,
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the effective config.  ``flags`` maps argparse dests to values (None = not given)."""
    env = os.environ if env is None else env
    flags = flags or {}
    config_dir = Path(env["RNN_CONFIG_DIR"]) if env.get("RNN_CONFIG_DIR") else default_config_dir()
    if config_file is None:
        config_file = Path(env["RNN_CONFIG"]) if env.get("RNN_CONFIG") else config_dir / "config.yaml"
    config_file = Path(config_file)
    file_values = _read_file(config_file)

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in SETTINGS:
        key = setting.key
        values[key], sources[key] = setting.default(), "default"
        if key in file_values:
            raw, line = file_values[key]
            try:
                values[key] = setting.parse(raw, False)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}", key=key, source=str(config_file), line=line) from None
            sources[key] = f"{config_file}:{line}"
        if setting.env in env:
            try:
                values[key] = setting.parse(env[setting.env], True)
            except ValueError as exc:
                raise ConfigError(f"{key}: {exc}", key=key, source=f"environment {setting.env}") from None
            sources[key] = f"env {setting.env}"
    for dest, raw in flags.items():
        if raw is None or dest not in _BY_FLAG:
            continue
        setting = _BY_FLAG[dest]
        try:
            values[setting.key] = setting.parse(raw, True)
        except ValueError as exc:
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(f"{setting.key}: {exc}", key=setting.key, source=f"flag {flag}") from None
        sources[setting.key] = "flag --" + dest.replace("_", "-")
    return Config(values=values, sources=sources, config_file=config_file, config_dir=config_dir)


def settings_markdown() -> str:
    """The settings table for docs/CONFIG.md (a test keeps the doc in sync)."""
    rows = ["| key | environment | flag | default | meaning |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        default = _render(s.default()) if s.key not in ("node.data_dir", "node.log_dir") else {
            "node.data_dir": "`~/.local/share/remote-network`",
            "node.log_dir": "`~/.cache/remote-network/logs`",
        }[s.key]
        flag = f"`--{s.flag.replace('_', '-')}`" if s.flag else ""
        rows.append(f"| `{s.key}` | `{s.env}` | {flag} | {default} | {s.help} |")
    return "\n".join(rows)
