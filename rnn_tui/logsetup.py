"""Logging for the node: a rotating file in the log dir, plus stdout in headless mode."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str, log_dir: Path | None, *, to_stdout: bool) -> Path | None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    formatter = logging.Formatter(FORMAT)
    log_file = None
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            log_file = log_dir / "rnn.log"
            handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=10 * 1024 * 1024,
                                                           backupCount=5, encoding="utf-8")
            handler.setFormatter(formatter)
            root.addHandler(handler)
        except OSError as exc:
            print(f"warning: cannot write logs to {log_dir}: {exc.strerror}", file=sys.stderr)
            log_file = None
    if to_stdout:
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    # aioquic logs every handshake at INFO, docker and urllib3 every request at DEBUG:
    # keep them at WARNING unless the operator asked for debug.
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    for name in ("quic", "aioquic", "docker", "urllib3", "peewee", "asyncio"):
        logging.getLogger(name).setLevel(quiet)
    return log_file
