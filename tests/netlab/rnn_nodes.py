"""Real ``rnn start --headless`` nodes inside NAT-lab namespaces.

Why: the issue's lab runs the product itself, not a stand-in.  Each node gets its own
home (XDG dirs, data dir, keystore with the fast test KDF), binds ``--port 0`` in its own
namespace and bootstraps only from lab nodes (never the public routers).  ``rnn`` CLI
calls run inside the same namespace and talk to the node over its control socket.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.netlab.lab import LabHost

RNN = [sys.executable, "-m", "rnn_tui"]


class RnnNode:
    def __init__(self, host: LabHost, home: Path, bootstrap: str = "",
                 extra: tuple[str, ...] = (), config: str = "") -> None:
        self.host = host
        self.home = home
        self.data = home / "data-dir"
        for sub in ("config", "data", "cache"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env.update({"XDG_CONFIG_HOME": str(home / "config"),
                         "XDG_DATA_HOME": str(home / "data"),
                         "XDG_CACHE_HOME": str(home / "cache"),
                         "RNN_KEYSTORE_KDF_COST": "interactive", "PYTHONUNBUFFERED": "1"})
        if config:  # YAML settings for this node only (RNN_CONFIG names the file)
            (home / "config.yaml").write_text(config)
            self.env["RNN_CONFIG"] = str(home / "config.yaml")
        self.proc = host.popen([*RNN, "start", "--headless", "--data-dir", str(self.data),
                                "--port", "0", "--bootstrap", bootstrap, *extra],
                               env=self.env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def cli(self, *args: str, timeout: float = 30.0) -> Any:
        """Run ``rnn <args> --json --data-dir <ours>`` in our namespace; parsed JSON or None."""
        res = subprocess.run(["ip", "netns", "exec", self.host.netns, *RNN, *args, "--json",
                              "--data-dir", str(self.data)], env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else None

    def wait_status(self, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rnn on {self.host.netns} exited:\n{self.output()}")
            status = self.cli("status")
            if status:
                return dict(status)
            time.sleep(0.3)
        raise TimeoutError(f"rnn on {self.host.netns} gave no status in {timeout:g}s")

    def port(self) -> int:
        listen = str(self.wait_status()["listen"])
        return int(listen.rsplit(":", 1)[1])

    def stop(self) -> str:
        """SIGTERM by PID, bounded wait, SIGKILL as a last resort; returns the log."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate(timeout=10)
        return out or ""

    def output(self) -> str:
        try:
            out, _ = self.proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            return "(still running)"
        return out or ""
