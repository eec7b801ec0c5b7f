"""Real ``rnn start --headless`` processes for integration tests.

Each node gets its own data dir, its own loopback address (127.0.0.N, so per-IP limits in
the DHT see distinct hosts) and a free port.  ``NodeCluster`` stops every process it
started, by PID: SIGTERM first, SIGKILL if it does not exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import free_udp_port, rnn_env

RNN = [sys.executable, "-m", "rnn_tui"]


class NodeProcess:
    def __init__(self, home: Path, name: str, host: str, port: int, bootstrap: str,
                 extra_args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.home = home
        self.name = name
        self.host = host
        self.port = port
        self.data_dir = home / name
        self.log_path = home / f"{name}.log"
        self.bootstrap = bootstrap
        self.extra_args = extra_args
        self.env = env or rnn_env(home)
        self.proc: subprocess.Popen[bytes] | None = None
        self.peer_id = ""

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*RNN, "start", "--headless", "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--listen-host", self.host, "--bootstrap", self.bootstrap, *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        status = wait_for(lambda: self.try_call("status"), timeout=timeout,
                          what=f"{self.name} to answer status", on_fail=self.tail)
        self.peer_id = status["peer_id"]
        return status

    def rnn(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*RNN, *args, "--data-dir", str(self.data_dir)], capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def call(self, *args: str, timeout: float = 60.0) -> Any:
        res = self.rnn(*args, "--json", timeout=timeout)
        if res.returncode != 0:
            raise AssertionError(f"rnn {' '.join(args)} on {self.name} failed: {res.stderr}")
        return json.loads(res.stdout)

    def try_call(self, *args: str) -> Any:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        res = self.rnn(*args, "--json", timeout=30)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class NodeCluster:
    """A bootstrap node plus N nodes, each on its own 127.0.0.x address."""

    def __init__(self, home: Path, base: int = 10) -> None:
        self.home = home
        self.base = base
        self.nodes: list[NodeProcess] = []

    def add(self, bootstrap: str = "", extra_args: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> NodeProcess:
        index = len(self.nodes)
        host = f"127.0.{os.getpid() % 200 + 1}.{self.base + index}"
        node = NodeProcess(self.home, f"node{index}", host, free_udp_port(host), bootstrap,
                           extra_args, env)
        self.nodes.append(node)
        node.start()
        return node

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop()


@contextmanager
def cluster(home: Path, base: int = 10) -> Iterator[NodeCluster]:
    c = NodeCluster(home, base)
    try:
        yield c
    finally:
        c.stop_all()


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25,
             what: str = "condition", on_fail: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = "\n" + on_fail() if on_fail else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)
