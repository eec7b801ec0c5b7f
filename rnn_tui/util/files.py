"""Atomic, permission-aware file writes.

Why: a crash or a full disk while writing a keystore, config or export must never leave
a half-written file in place of a good one.  We write to a temporary file in the same
directory, fsync, set the mode, then ``os.replace`` it over the target.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically with ``mode``.

    With ``overwrite=False`` an existing file is left alone and ``FileExistsError`` raised;
    the check and the rename are race-free through ``os.link``.
    """
    path = Path(path)
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp_name, path)
        else:
            os.link(tmp_name, path)  # fails with FileExistsError if path exists
            os.unlink(tmp_name)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; the leaf gets mode 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
