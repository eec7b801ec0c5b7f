"""Shared fixtures: every test runs with its own config, data and cache dirs.

No test touches the operator's real ``~/.config/remote-network``, and keystores use the
interactive Argon2id cost so the suite stays fast (the moderate default is tested once).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("home")
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache")):
        (home / sub).mkdir()
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("RNN_KEYSTORE_KDF_COST", "interactive")
    for var in ("RNN_PASSPHRASE", "RNN_CONFIG", "RNN_CONFIG_DIR", "RNN_PORT", "RNN_DATA_DIR",
                "RNN_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    return home


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def rnn_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a child ``rnn`` process isolated under ``home``."""
    env = dict(os.environ)
    env.update({
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "RNN_KEYSTORE_KDF_COST": "interactive",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env
