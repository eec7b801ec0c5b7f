"""The foundation through the real ``rnn`` executable: keys, config, errors, headless lifecycle."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_udp_port, rnn_env

pytestmark = pytest.mark.integration
RNN = [sys.executable, "-m", "rnn_tui"]


def rnn(home: Path, *args: str, env: dict[str, str] | None = None, check: bool = False,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*RNN, *args], capture_output=True, text=True, timeout=timeout,
                          env=env or rnn_env(home))
    if check and proc.returncode != 0:
        raise AssertionError(f"rnn {' '.join(args)} failed: {proc.stderr}")
    return proc


def test_version_and_help(isolated_dirs: Path) -> None:
    assert rnn(isolated_dirs, "--version", check=True).stdout.startswith("rnn ")
    out = rnn(isolated_dirs, "--help", check=True).stdout
    for word in ("start", "status", "key", "config"):
        assert word in out


def test_key_info_creates_identity_once(isolated_dirs: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    first = json.loads(rnn(isolated_dirs, "key", "info", "--json", "--data-dir", d, check=True).stdout)
    second = json.loads(rnn(isolated_dirs, "key", "info", "--json", "--data-dir", d, check=True).stdout)
    assert first["new"] is True and second["new"] is False
    assert first["peer_id"] == second["peer_id"]
    assert stat.S_IMODE(os.stat(first["key_file"]).st_mode) == 0o600
    passfile = isolated_dirs / "config" / "remote-network" / "passphrase"
    assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600


def test_export_formats_overwrite_refusal_and_import(isolated_dirs: Path, tmp_path: Path) -> None:
    d = str(tmp_path / "data")
    info = json.loads(rnn(isolated_dirs, "key", "info", "--json", "--data-dir", d, check=True).stdout)
    hex_out, bin_out = tmp_path / "k.hex", tmp_path / "k.bin"
    rnn(isolated_dirs, "key", "export", "--format", "hex", "--output", str(hex_out), "--data-dir", d, check=True)
    rnn(isolated_dirs, "key", "export", "--format", "binary", "--output", str(bin_out), "--data-dir", d, check=True)
    assert stat.S_IMODE(os.stat(hex_out).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(bin_out).st_mode) == 0o600
    seed = bin_out.read_bytes()
    assert len(seed) == 32 and hex_out.read_text().strip() == seed.hex()

    hex_out.write_text("precious")
    again = rnn(isolated_dirs, "key", "export", "--output", str(hex_out), "--data-dir", d)
    assert again.returncode != 0 and "--force" in again.stderr and "exists" in again.stderr
    assert hex_out.read_text() == "precious"
    rnn(isolated_dirs, "key", "export", "--output", str(hex_out), "--force", "--data-dir", d, check=True)
    assert hex_out.read_text().strip() == seed.hex()

    # import into a fresh data dir gives the same peer id; importing over it needs --force
    d2 = str(tmp_path / "data2")
    rnn(isolated_dirs, "key", "import", str(bin_out), "--data-dir", d2, check=True)
    info2 = json.loads(rnn(isolated_dirs, "key", "info", "--json", "--data-dir", d2, check=True).stdout)
    assert info2["peer_id"] == info["peer_id"]
    refused = rnn(isolated_dirs, "key", "import", str(hex_out), "--data-dir", d2)
    assert refused.returncode != 0 and "already exists" in refused.stderr
    bad = tmp_path / "bad.key"
    bad.write_text("nope")
    res = rnn(isolated_dirs, "key", "import", str(bad), "--data-dir", str(tmp_path / "d3"))
    assert res.returncode != 0 and "expected a 32-byte" in res.stderr


def test_wrong_passphrase_and_corrupt_keystore_one_line_errors(isolated_dirs: Path, tmp_path: Path) -> None:
    d = tmp_path / "data"
    env = rnn_env(isolated_dirs, RNN_PASSPHRASE="right")
    rnn(isolated_dirs, "key", "info", "--data-dir", str(d), env=env, check=True)
    keyfile = d / "identity.key"
    before = keyfile.read_bytes()
    res = rnn(isolated_dirs, "key", "info", "--data-dir", str(d), env=rnn_env(isolated_dirs, RNN_PASSPHRASE="wrong"))
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "wrong passphrase" in res.stderr
    keyfile.write_bytes(before[:40])
    res = rnn(isolated_dirs, "start", "--headless", "--data-dir", str(d), "--port", "0", "--bootstrap", "",
              env=env)
    assert res.returncode == 1 and "corrupted or truncated" in res.stderr and "Traceback" not in res.stderr
    assert keyfile.read_bytes() == before[:40]


def test_config_show_and_bad_config(isolated_dirs: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("node:\n  port: 4444\n")
    out = json.loads(rnn(isolated_dirs, "config", "show", "--json", "--config", str(cfg), check=True).stdout)
    assert out["settings"]["node.port"] == {"value": "4444", "source": f"{cfg}:2"}
    out = json.loads(rnn(isolated_dirs, "--port", "5555", "config", "show", "--json", "--config", str(cfg),
                         check=True).stdout)
    assert out["settings"]["node.port"]["source"] == "flag --port"
    cfg.write_text("node:\n  prot: 1\n")
    res = rnn(isolated_dirs, "config", "show", "--config", str(cfg))
    assert res.returncode == 1 and f"{cfg}:2:" in res.stderr and "unknown key 'node.prot'" in res.stderr
    cfg.write_text("node: [\n")
    res = rnn(isolated_dirs, "start", "--headless", "--config", str(cfg))
    assert res.returncode == 1 and "invalid YAML" in res.stderr and "Traceback" not in res.stderr


def test_unreadable_data_dir(isolated_dirs: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = rnn(isolated_dirs, "start", "--headless", "--data-dir", str(blocker / "sub"), "--port", "0",
              "--bootstrap", "")
    assert res.returncode == 1 and str(blocker) in res.stderr and "Traceback" not in res.stderr


def test_commands_without_a_running_node_say_so(isolated_dirs: Path, tmp_path: Path) -> None:
    res = rnn(isolated_dirs, "status", "--data-dir", str(tmp_path / "nodata"))
    assert res.returncode == 1 and "no node is running" in res.stderr
    assert res.stderr.strip().count("\n") == 0


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_headless_start_status_and_clean_sigterm(isolated_dirs: Path, tmp_path: Path) -> None:
    d = tmp_path / "data"
    port = free_udp_port()
    proc = subprocess.Popen([*RNN, "start", "--headless", "--data-dir", str(d), "--port", str(port),
                             "--listen-host", "127.0.0.1", "--bootstrap", ""],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=rnn_env(isolated_dirs))
    try:
        sock = d / "control.sock"
        wait_for(lambda: sock.exists())
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        status = wait_for(lambda: _status(isolated_dirs, d))
        assert len(status["peer_id"]) == 52
        # nothing listens on TCP: the control API is the Unix socket only
        ss = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        assert f"pid={proc.pid}," not in ss
        udp = subprocess.run(["ss", "-lunpH"], capture_output=True, text=True, check=True).stdout
        assert f"pid={proc.pid}," in udp and f":{port}" in udp
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "node stopped" in out and "Traceback" not in out
    assert not (d / "control.sock").exists()
    log_file = isolated_dirs / "cache" / "remote-network" / "logs" / "rnn.log"
    assert "node stopped" in log_file.read_text()
    # the store was closed cleanly: the WAL is checkpointed away
    assert not (d / "node.db-wal").exists() or (d / "node.db-wal").stat().st_size == 0


def _status(home: Path, d: Path) -> dict | None:  # type: ignore[type-arg]
    res = rnn(home, "status", "--json", "--data-dir", str(d))
    return json.loads(res.stdout) if res.returncode == 0 else None


def test_port_already_in_use_is_one_clear_line(isolated_dirs: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = rnn(isolated_dirs, "start", "--headless", "--data-dir", str(tmp_path / "d"), "--port",
                  str(port), "--listen-host", "127.0.0.1", "--bootstrap", "")
    assert res.returncode == 1
    assert f"cannot listen on UDP 127.0.0.1:{port}: already in use" in res.stderr
    assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0


def test_second_node_on_same_data_dir_is_refused(isolated_dirs: Path, tmp_path: Path) -> None:
    d = tmp_path / "data"
    args = ["start", "--headless", "--data-dir", str(d), "--port", "0", "--listen-host", "127.0.0.1",
            "--bootstrap", ""]
    proc = subprocess.Popen([*RNN, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=rnn_env(isolated_dirs))
    try:
        wait_for(lambda: _status(isolated_dirs, d))
        res = rnn(isolated_dirs, *args)
        assert res.returncode == 1 and "already running" in res.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
