from __future__ import annotations

from pathlib import Path

import pytest

from rnn_tui.config import DEFAULT_PORT, PUBLIC_BOOTSTRAP, load_config, settings_markdown
from rnn_tui.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    cfg = load_config(config_file=tmp_path / "absent.yaml", env={})
    assert cfg.port == DEFAULT_PORT == 30609
    assert cfg.listen_host == "0.0.0.0"
    assert cfg["dht.bootstrap"] == PUBLIC_BOOTSTRAP
    assert cfg["dht.topic"] == "remote-network-mesh"
    assert cfg.data_dir.parts[-1] == "remote-network"
    assert cfg.log_dir.parts[-2:] == ("remote-network", "logs")
    assert all(src == "default" for _, _, src in cfg.as_rows())


def test_precedence_file_env_flag(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_text("node:\n  port: 4000\n  log_level: debug\ndht:\n  bootstrap: ['127.0.0.1:7000']\n")
    cfg = load_config(config_file=f, env={})
    assert cfg.port == 4000 and cfg.sources["node.port"] == f"{f}:2"
    assert cfg.bootstrap == [("127.0.0.1", 7000)]
    cfg = load_config(config_file=f, env={"RNN_PORT": "5000"})
    assert cfg.port == 5000 and cfg.sources["node.port"] == "env RNN_PORT"
    assert cfg["node.log_level"] == "debug"
    cfg = load_config(config_file=f, env={"RNN_PORT": "5000"}, flags={"port": "6000"})
    assert cfg.port == 6000 and cfg.sources["node.port"] == "flag --port"


def test_empty_bootstrap_flag_means_none(tmp_path: Path) -> None:
    cfg = load_config(config_file=tmp_path / "x.yaml", env={}, flags={"bootstrap": ""})
    assert cfg.bootstrap == []
    cfg = load_config(config_file=tmp_path / "x.yaml", env={},
                      flags={"bootstrap": "127.0.0.1:1,[::1]:2"})
    assert cfg.bootstrap == [("127.0.0.1", 1), ("::1", 2)]


def test_section_env_names(tmp_path: Path) -> None:
    cfg = load_config(config_file=tmp_path / "x.yaml", env={"RNN_EXECUTOR_MAX_PIDS": "64",
                                                            "RNN_DHT_TOPIC": "t"})
    assert cfg["executor.max_pids"] == 64 and cfg["dht.topic"] == "t"


@pytest.mark.parametrize(("text", "needle", "line"), [
    ("node:\n  port: 1\n  colour: red\n", "unknown key 'node.colour'", 3),
    ("nodes:\n  port: 1\n", "unknown section 'nodes'", 1),
    ("node:\n  port: eighty\n", "expected an integer", 2),
    ("node:\n  port: 70000\n", "between 0 and 65535", 2),
    ("node:\n  ipv6: maybe\n", "expected true or false", 2),
    ("dht:\n  bootstrap: ['nohost']\n", "expected HOST:PORT", 2),
    ("node:\n  port: [1\n", "invalid YAML", 3),
    ("- a\n- b\n", "must be a mapping", 1),
    ("node:\n  port: 1\n  port: 2\n", "duplicate key", 3),
])
def test_file_errors_name_key_file_and_line(tmp_path: Path, text: str, needle: str, line: int) -> None:
    f = tmp_path / "config.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(config_file=f, env={})
    message = str(err.value)
    assert needle in message
    assert f"{f}:{line}:" in message


def test_env_and_flag_errors_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment RNN_PORT"):
        load_config(config_file=tmp_path / "x", env={"RNN_PORT": "x"})
    with pytest.raises(ConfigError, match="flag --bootstrap"):
        load_config(config_file=tmp_path / "x", env={}, flags={"bootstrap": "a:b"})


def test_unreadable_config_file(tmp_path: Path) -> None:
    f = tmp_path / "config.yaml"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(config_file=f, env={})


def test_config_doc_lists_every_setting() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "CONFIG.md").read_text()
    assert settings_markdown() in doc, "docs/CONFIG.md is stale: paste settings_markdown() into it"


@pytest.mark.parametrize(("raw", "want"), [("auto", "auto"), (True, "true"), (False, "false"),
                                           ("yes", "true"), ("off", "false")])
def test_dht_read_only_accepts_auto_and_booleans(tmp_path, raw, want) -> None:  # type: ignore[no-untyped-def]
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"dht": {"read_only": raw}}))
    assert load_config(config_file=path, env={})["dht.read_only"] == want


def test_dht_read_only_refuses_other_words(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "config.yaml"
    path.write_text("dht:\n  read_only: sometimes\n")
    with pytest.raises(ConfigError, match="auto, true or false"):
        load_config(config_file=path, env={})
