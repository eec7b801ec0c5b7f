"""Real-terminal smoke test: ``rnn`` in tmux against a local bootstrap node.

A headless node is the bootstrap; the UI node starts in a tmux pane (160x48, UTF-8) with
only that bootstrap, we press the pane keys and read ``capture-pane``.  Everything listens
on 127.0.0.1 with port 0; both processes are stopped by their own ids at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.tui, pytest.mark.integration, pytest.mark.slow]

RNN = str(Path(sys.executable).with_name("rnn"))


def node_args(root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pass").write_text("smoke-test-passphrase\n")
    (root / "pass").chmod(0o600)
    return ["--data-dir", str(root / "data"), "--log-dir", str(root / "logs"),
            "--config", str(root / "absent.yaml"), "--listen-host", "127.0.0.1",
            "--port", "0", "--passphrase-file", str(root / "pass")]


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")
def test_rnn_in_tmux_against_a_local_bootstrap(tmp_path: Path) -> None:
    log = tmp_path / "bootstrap.out"
    with open(log, "wb") as out:
        boot = subprocess.Popen([RNN, "start", "--headless", "--bootstrap", "",
                                 *node_args(tmp_path / "boot")], stdout=out, stderr=out)
    session = f"rnn-smoke-{uuid.uuid4().hex[:8]}"
    try:
        port = wait_for(lambda: (m := re.search(r"listening on UDP 127\.0\.0\.1:(\d+)",
                                                log.read_text(errors="replace")))
                        and m.group(1), 60, "the bootstrap node to listen")
        command = " ".join([RNN, "start", "--bootstrap", f"127.0.0.1:{port}",
                            *node_args(tmp_path / "ui")])
        env = dict(os.environ, LANG="C.UTF-8", TERM="xterm-256color")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48",
                        command], check=True, env=env)

        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"],
                                  capture_output=True, text=True).stdout

        def keys(*names: str) -> None:
            subprocess.run(["tmux", "send-keys", "-t", session, *names], check=True)

        text = wait_for(lambda: "peers │" in screen() and screen(), 60, "the header")
        assert "127.0.0.1:" in text and "Peer" in text
        for key, expected in (("2", "Services"), ("3", "Workflows"), ("4", "Runs"),
                              ("1", "Last seen")):
            keys(key)
            wait_for(lambda e=expected: e in screen().split("\n", 3)[-1], 15, f"pane {key}")
        keys("?")
        wait_for(lambda: "Everywhere" in screen(), 15, "the help screen")
        keys("Escape")
        wait_for(lambda: "Everywhere" not in screen(), 15, "the help screen to close")
        keys("q")
        wait_for(lambda: subprocess.run(["tmux", "has-session", "-t", session],
                                        capture_output=True).returncode != 0, 30,
                 "rnn to quit and close the pane")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        boot.terminate()
        try:
            boot.wait(10)
        except subprocess.TimeoutExpired:
            boot.kill()
            boot.wait(10)
