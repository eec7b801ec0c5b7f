"""STDIN of a job fed from a transfer that is still arriving (streamed pipes).

Why a file and a condition, not a queue of chunks: the transfer driver already writes each
verified chunk to the job's workspace before acknowledging it (resume needs that), so the
container's feeder thread can read those bytes back from the page cache; memory stays at
one read buffer whatever the stream's size, and a transfer that resumes after a reconnect
is fed the same way.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["StdinFeed"]


class StdinFeed:
    """STDIN landing in the workspace, read by the container's feeder thread as it grows.

    The transfer driver reports each verified chunk (``progress``) on the event loop; the
    feeder thread reads only verified bytes, from the ``.part`` file (or the final file once
    renamed), and ends the container's STDIN when the transfer completes.  A failed or
    cancelled transfer ends it too, with ``failed`` saying why.
    """

    def __init__(self, part: Path, final: Path) -> None:
        self.part = part
        self.final = final
        self._cond = threading.Condition()
        self.available = 0
        self.done = False
        self.failed = ""

    def progress(self, verified: int) -> None:
        with self._cond:
            self.available = max(self.available, verified)
            self._cond.notify_all()

    def finish(self, size: int) -> None:
        with self._cond:
            self.available = max(self.available, size)
            self.done = True
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        with self._cond:
            self.failed = self.failed or reason
            self._cond.notify_all()

    def chunks(self) -> Iterator[bytes]:
        """Blocking (the feeder thread): the verified bytes, in order, until the end."""
        fd: int | None = None
        offset = 0
        try:
            while True:
                with self._cond:
                    while offset >= self.available and not self.done and not self.failed:
                        self._cond.wait(1.0)
                    available, done, failed = self.available, self.done, self.failed
                if failed:
                    return
                if offset >= available:
                    if done:
                        return
                    continue
                if fd is None:
                    for path in (self.part, self.final):
                        with contextlib.suppress(FileNotFoundError):
                            fd = os.open(path, os.O_RDONLY)
                            break
                    if fd is None:
                        self.fail("the streamed input vanished from the workspace")
                        return
                data = os.pread(fd, min(available - offset, 1 << 20), offset)
                if not data:
                    self.fail(f"the streamed input is shorter than its {available} verified "
                              "bytes")
                    return
                offset += len(data)
                yield data
        finally:
            if fd is not None:
                os.close(fd)
