"""Chunked, hashed, resumable transfer of one output: a sender and a receiver state machine.

Why sans-IO: the transfer logic (which chunk next, what a resume means, when a hash proves
the object) is independent of the QUIC stream it rides on.  The driver moves messages
between the two machines over the authenticated connection, reads the source and writes the
destination; the machines never touch a socket, a file or the clock.

Protocol (S = sender, R = receiver)::

    S→R  Offer(id, name, chunk_size, size?, window)   also after every reconnect
    R→S  ResumeFrom(id, next_index)                chunks < next_index are verified on R's disk
    S→R  Chunk(id, index, sha256, data)            in order, at most ``window`` unacknowledged
    R→S  Ack(id, next_index)                       cumulative; frees S's buffer
    S→R  End(id, chunks, size, sha256)             after the last chunk
    R→S  Completed(id, sha256)                     whole-object hash checked
    either  Aborted(id, reason)

Guarantees:

* **Integrity.**  Each chunk carries its sha256; R drops the transfer on a mismatch, naming
  the chunk.  At the end R compares the whole-object sha256 (and, when given, the hash the
  routing or receipt announced) before declaring success.
* **Resume.**  After a disconnect S offers again; R answers with the number of chunks it has
  verified, and only later chunks travel again.  A file source can restart from any chunk
  (the driver reads at ``read_offset``); a stream source keeps its unacknowledged chunks and
  resumes from them.  R survives its own restart via :func:`resume_state`, which re-hashes
  the verified prefix of the partial file.
* **Bounded memory.**  S holds at most ``window`` chunks; ``wants_data()`` tells the driver
  how much it may read.  R holds nothing: each verified chunk is handed out as a
  ``WriteChunk`` event.  Drivers must apply events (write the chunk) *before* sending the
  messages drained after them, so an ``Ack`` never runs ahead of the disk.
* **Confinement.**  Destination names are relative, without ``..``; :func:`confine_path`
  also refuses names that escape the job directory through a symlink.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from rnn_tui.errors import LocalProtocolError, WorkflowError

__all__ = [
    "DEFAULT_CHUNK_SIZE", "DEFAULT_WINDOW",
    "Offer", "ResumeFrom", "Chunk", "Ack", "End", "Completed", "Aborted", "TransferMessage",
    "WriteChunk", "TransferCompleted", "TransferFailed", "TransferEvent",
    "TransferSender", "TransferReceiver", "TransferState",
    "check_file_name", "confine_path", "PathEscape", "hash_file", "resume_state",
    "open_destination",
]

DEFAULT_CHUNK_SIZE = 1 << 20
DEFAULT_WINDOW = 8
MAX_CHUNK_SIZE = 16 << 20


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Offer:
    transfer_id: str
    name: str
    chunk_size: int
    size: int | None = None
    window: int = 8


@dataclass(frozen=True, slots=True)
class ResumeFrom:
    transfer_id: str
    next_index: int


@dataclass(frozen=True, slots=True)
class Chunk:
    transfer_id: str
    index: int
    sha256: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    transfer_id: str
    next_index: int


@dataclass(frozen=True, slots=True)
class End:
    transfer_id: str
    chunks: int
    size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class Completed:
    transfer_id: str
    sha256: bytes


@dataclass(frozen=True, slots=True)
class Aborted:
    transfer_id: str
    reason: str


TransferMessage = Offer | ResumeFrom | Chunk | Ack | End | Completed | Aborted


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class WriteChunk:
    """Receiver: write ``data`` at ``offset`` of the partial file (before sending acks).

    ``sha256`` is the chunk's verified hash: a driver keeps it next to the partial file so
    that :func:`resume_state` can re-verify every chunk on disk after a crash.
    """

    offset: int
    data: bytes
    sha256: bytes = b""


@dataclass(frozen=True, slots=True)
class TransferCompleted:
    size: int
    sha256: bytes


@dataclass(frozen=True, slots=True)
class TransferFailed:
    reason: str


TransferEvent = WriteChunk | TransferCompleted | TransferFailed


class TransferState(StrEnum):
    OFFERING = "OFFERING"          # offer sent, waiting for ResumeFrom
    SENDING = "SENDING"
    ENDING = "ENDING"              # End sent, waiting for Completed
    DISCONNECTED = "DISCONNECTED"
    WAITING = "WAITING"            # receiver: waiting for an offer
    RECEIVING = "RECEIVING"
    DONE = "DONE"
    FAILED = "FAILED"


_FINAL = frozenset({TransferState.DONE, TransferState.FAILED})


class _Machine:
    """What both sides share: an id, a state, an outbox and an event queue."""

    def __init__(self, transfer_id: str, state: TransferState) -> None:
        self.transfer_id = transfer_id
        self.state = state
        self._outbox: list[TransferMessage] = []
        self._events: deque[TransferEvent] = deque()
        self.failure = ""

    @property
    def finished(self) -> bool:
        return self.state in _FINAL

    def messages_to_send(self) -> list[TransferMessage]:
        out, self._outbox = self._outbox, []
        return out

    def next_event(self) -> TransferEvent | None:
        return self._events.popleft() if self._events else None

    def abort(self, reason: str) -> None:
        """Give up (our side decided); tells the peer why."""
        if self.finished:
            return
        self._outbox.append(Aborted(self.transfer_id, reason))
        self._fail(reason)

    def _fail(self, reason: str) -> None:
        self.state = TransferState.FAILED
        self.failure = reason
        self._events.append(TransferFailed(reason))

    def _foreign(self, message: TransferMessage) -> bool:
        if message.transfer_id != self.transfer_id:
            self.abort(f"message for transfer {message.transfer_id!r} on transfer "
                       f"{self.transfer_id!r}")
            return True
        if isinstance(message, Aborted):
            if not self.finished:
                self._fail(f"peer aborted: {message.reason}")
            return True
        return self.finished


# --------------------------------------------------------------------------- sender


class TransferSender(_Machine):
    """Sends one object in hashed chunks, keeping at most ``window`` chunks in memory.

    File mode: pass ``size`` and ``sha256`` (see :func:`hash_file`); any resume point works,
    the driver reads at ``read_offset``.  Stream mode (both ``None``): the hash is computed
    while data is pushed, and a resume must start within the chunks still held.
    """

    def __init__(self, transfer_id: str, name: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
                 window: int = DEFAULT_WINDOW, size: int | None = None,
                 sha256: bytes | None = None) -> None:
        super().__init__(transfer_id, TransferState.OFFERING)
        if not 0 < chunk_size <= MAX_CHUNK_SIZE or window < 1:
            raise LocalProtocolError(f"chunk_size must be 1..{MAX_CHUNK_SIZE}, window ≥ 1")
        if (size is None) != (sha256 is None):
            raise LocalProtocolError("give both size and sha256 (file mode) or neither (stream)")
        self.name = name
        self.chunk_size = chunk_size
        self.window = window
        self.size = size
        self._object_sha = sha256
        self._hasher = hashlib.sha256() if sha256 is None else None
        self._partial = bytearray()
        self._held: deque[Chunk] = deque()   # made, not yet acknowledged
        self._next_index = 0                 # index of the next chunk to make
        self._next_send = 0                  # index of the next chunk to put on the wire
        self._acked = 0                      # receiver has every chunk below this
        self._eof = False
        self._made = 0                       # bytes turned into chunks so far
        self._outbox.append(Offer(transfer_id, name, chunk_size, size, window))

    @property
    def seekable(self) -> bool:
        return self._object_sha is not None

    @property
    def read_offset(self) -> int:
        """Where the next pushed byte belongs in the source (file mode re-reads from here)."""
        return self._made + len(self._partial)

    @property
    def acknowledged_chunks(self) -> int:
        return self._acked

    @property
    def held_bytes(self) -> int:
        """Source bytes in memory right now (never above ``window * chunk_size``)."""
        return sum(len(c.data) for c in self._held) + len(self._partial)

    def wants_data(self) -> int:
        """How many bytes the driver may push now (0 when the window is full or at EOF)."""
        if self._eof or self.finished:
            return 0
        return max(0, self.window * self.chunk_size - self.held_bytes)

    def push(self, data: bytes, digests: Sequence[bytes] | None = None) -> None:
        """Append source bytes (at most ``wants_data()``).

        ``digests``: the sha256 of each whole ``chunk_size`` piece of ``data``, computed by
        the driver (off its event loop: hashing is most of a transfer's CPU).  Used only when
        ``data`` starts on a chunk boundary; otherwise the chunks are hashed here.
        """
        if self._eof:
            raise LocalProtocolError("push() after finish()")
        if len(data) > self.wants_data():
            raise LocalProtocolError("push() beyond wants_data(): the window bounds memory")
        if self._hasher is not None:
            self._hasher.update(data)
        size = self.chunk_size
        if digests is not None and not self._partial and len(digests) >= len(data) // size:
            whole = len(data) // size
            for i in range(whole):
                self._make_chunk(data[i * size:(i + 1) * size], digests[i])
            data = data[whole * size:]
        self._partial += data
        while len(self._partial) >= self.chunk_size:
            self._make_chunk(bytes(self._partial[:self.chunk_size]))
            del self._partial[:self.chunk_size]
        self._pump()

    def finish(self) -> None:
        """The source is exhausted: cut the last (short) chunk and send End once all is out."""
        if self._eof:
            return
        if self._partial:
            self._make_chunk(bytes(self._partial))
            self._partial.clear()
        self._eof = True
        if self.size is not None and self._made != self.size:
            self.abort(f"source has {self._made} bytes, but {self.size} were announced")
            return
        self._pump()

    def connection_lost(self) -> None:
        """The stream broke: stop sending; ``reconnected()`` offers again."""
        if not self.finished:
            self.state = TransferState.DISCONNECTED
            self._outbox.clear()
            self._next_send = self._acked

    def reconnected(self) -> None:
        if self.state is TransferState.DISCONNECTED:
            self.state = TransferState.OFFERING
            self._outbox.append(Offer(self.transfer_id, self.name, self.chunk_size, self.size,
                                      self.window))

    def receive(self, message: TransferMessage) -> None:
        if self._foreign(message):
            return
        if isinstance(message, ResumeFrom):
            if self.state is not TransferState.OFFERING:
                self.abort(f"unexpected ResumeFrom while {self.state.value}")
                return
            self._resume(message.next_index)
        elif isinstance(message, Ack):
            if not self._acked <= message.next_index <= self._next_send:
                self.abort(f"ack for chunk {message.next_index} outside sent range "
                           f"{self._acked}..{self._next_send}")
                return
            self._advance_ack(message.next_index)
            self._pump()
        elif isinstance(message, Completed):
            expected = self._whole_sha()
            if self.state is not TransferState.ENDING or message.sha256 != expected:
                self.abort("receiver confirmed a different object")
                return
            self.state = TransferState.DONE
            self._events.append(TransferCompleted(self._made, message.sha256))
        else:
            self.abort(f"a sender does not accept {type(message).__name__}")

    # ---- internals
    def _resume(self, index: int) -> None:
        lowest_held = self._held[0].index if self._held else self._next_index
        if index > self._next_index and not self.seekable:
            self.abort(f"receiver claims chunk {index}, only {self._next_index} were made")
            return
        if self.seekable:
            last = self._chunk_count_announced()
            if index > last:
                self.abort(f"receiver claims chunk {index} of a {last}-chunk object")
                return
            if not lowest_held <= index <= self._next_index:
                # re-read the source from the resume point; drop what we hold
                assert self.size is not None
                self._held.clear()
                self._partial.clear()
                self._next_index = index
                self._made = min(index * self.chunk_size, self.size)
                self._eof = index == last
                self._acked = index  # the receiver may have lost what it acknowledged
        elif index < lowest_held:
            self.abort(f"cannot resume a stream at chunk {index}: chunks before "
                       f"{lowest_held} were acknowledged and are no longer held")
            return
        self._advance_ack(index)
        self._next_send = index
        self.state = TransferState.SENDING
        self._pump()

    def _advance_ack(self, index: int) -> None:
        while self._held and self._held[0].index < index:
            self._held.popleft()
        self._acked = max(self._acked, index)

    def _make_chunk(self, data: bytes, digest: bytes | None = None) -> None:
        digest = hashlib.sha256(data).digest() if digest is None else digest
        chunk = Chunk(self.transfer_id, self._next_index, digest, data)
        self._held.append(chunk)
        self._next_index += 1
        self._made += len(data)

    def _chunk_count_announced(self) -> int:
        assert self.size is not None
        return -(-self.size // self.chunk_size)

    def _whole_sha(self) -> bytes:
        if self._object_sha is not None:
            return self._object_sha
        assert self._hasher is not None
        return self._hasher.digest()

    def _pump(self) -> None:
        if self.state is not TransferState.SENDING:
            return
        for chunk in self._held:
            if chunk.index >= self._next_send:
                self._outbox.append(chunk)
                self._next_send = chunk.index + 1
        if self._eof and self._next_send == self._next_index:
            self._outbox.append(End(self.transfer_id, self._next_index, self._made,
                                    self._whole_sha()))
            self.state = TransferState.ENDING


# --------------------------------------------------------------------------- receiver


class TransferReceiver(_Machine):
    """Receives one object; verifies every chunk, then the whole object.

    ``resume`` is ``(verified_chunks, hasher_over_them)`` from :func:`resume_state` after a
    restart.  ``expected_sha256`` (from the routing or a receipt) is checked at the end too.
    Acks go every ``window // 2`` chunks, so a sender with a full window always gets one.

    Hashing by the driver: ``receive`` takes the sha256 of a ``Chunk``'s data if the driver
    already has it; with ``driver_hashes=True`` the driver keeps the whole-object hash (it
    feeds it while writing the WriteChunk events, in a worker thread) and gives it with
    ``End``.  The checks are the same; only who runs sha256 changes.
    """

    def __init__(self, transfer_id: str, *, max_size: int, expected_name: str | None = None,
                 expected_sha256: bytes | None = None,
                 resume: tuple[int, hashlib._Hash] | None = None,
                 driver_hashes: bool = False) -> None:
        super().__init__(transfer_id, TransferState.WAITING)
        self.max_size = max_size
        self.expected_name = expected_name
        self.expected_sha256 = expected_sha256
        self.ack_every = 1
        self.name: str | None = None
        self.chunk_size = 0
        self._verified, self._hasher = resume if resume else (0, hashlib.sha256())
        self._bytes: int | None = None   # known at the first offer (resume has full chunks)
        self._short_seen = False
        self.driver_hashes = driver_hashes

    @property
    def verified_chunks(self) -> int:
        return self._verified

    def connection_lost(self) -> None:
        if not self.finished:
            self.state = TransferState.WAITING
            self._outbox.clear()

    def receive(self, message: TransferMessage, digest: bytes | None = None) -> None:
        """``digest``: with ``driver_hashes``, the driver's sha256 for a Chunk or an End."""
        if self._foreign(message):
            return
        if isinstance(message, Offer):
            self._on_offer(message)
        elif isinstance(message, End) and self.driver_hashes and digest is None:
            self.abort("the driver gave no whole-object digest with End (a driver bug)")
        elif isinstance(message, Chunk):
            self._on_chunk(message, digest)
        elif isinstance(message, End):
            self._on_end(message, digest)
        else:
            self.abort(f"a receiver does not accept {type(message).__name__}")

    def _on_offer(self, offer: Offer) -> None:
        problem = check_file_name(offer.name)
        if problem is not None:
            self.abort(f"refused name: {problem}")
            return
        if self.expected_name is not None and offer.name != self.expected_name:
            self.abort(f"offered {offer.name!r}, but the routing says {self.expected_name!r}")
            return
        if not 0 < offer.chunk_size <= MAX_CHUNK_SIZE or offer.window < 1:
            self.abort(f"chunk size {offer.chunk_size} outside 1..{MAX_CHUNK_SIZE}")
            return
        if self.chunk_size and offer.chunk_size != self.chunk_size:
            self.abort("chunk size changed on resume")
            return
        if offer.size is not None and offer.size > self.max_size:
            self.abort(f"object of {offer.size} bytes exceeds the limit of {self.max_size}")
            return
        self.name = offer.name
        self.chunk_size = offer.chunk_size
        self.ack_every = max(1, offer.window // 2)
        if self._bytes is None:
            self._bytes = self._verified * self.chunk_size
        self.state = TransferState.RECEIVING
        self._outbox.append(ResumeFrom(self.transfer_id, self._verified))

    def _on_chunk(self, chunk: Chunk, digest: bytes | None) -> None:
        if self.state is not TransferState.RECEIVING or self._bytes is None:
            self.abort(f"chunk {chunk.index} before an offer")
            return
        if chunk.index < self._verified:
            return  # a resend of something we already hold
        if chunk.index > self._verified:
            self.abort(f"chunk {chunk.index} arrived, expected {self._verified}")
            return
        actual = hashlib.sha256(chunk.data).digest() if digest is None else digest
        if actual != chunk.sha256:
            self.abort(f"chunk {chunk.index} hash mismatch")
            return
        if len(chunk.data) > self.chunk_size or self._short_seen or not chunk.data:
            self.abort(f"chunk {chunk.index} has a bad length ({len(chunk.data)})")
            return
        if self._bytes + len(chunk.data) > self.max_size:
            self.abort(f"object exceeds the limit of {self.max_size} bytes")
            return
        self._short_seen = len(chunk.data) < self.chunk_size
        self._events.append(WriteChunk(self._bytes, chunk.data, actual))
        if not self.driver_hashes:
            self._hasher.update(chunk.data)
        self._bytes += len(chunk.data)
        self._verified += 1
        if self._verified % self.ack_every == 0:
            self._outbox.append(Ack(self.transfer_id, self._verified))

    def _on_end(self, end: End, whole: bytes | None) -> None:
        if self.state is not TransferState.RECEIVING or self._bytes is None:
            self.abort("End before an offer")
            return
        digest = self._hasher.digest() if whole is None else whole
        if end.chunks != self._verified or end.size != self._bytes:
            self.abort(f"End says {end.chunks} chunks / {end.size} bytes, received "
                       f"{self._verified} / {self._bytes}")
        elif end.sha256 != digest:
            self.abort("whole-object hash mismatch")
        elif self.expected_sha256 is not None and digest != self.expected_sha256:
            self.abort("object differs from the hash announced for it")
        else:
            self.state = TransferState.DONE
            self._outbox.append(Completed(self.transfer_id, digest))
            self._events.append(TransferCompleted(self._bytes, digest))


# --------------------------------------------------------------------------- file helpers


class PathEscape(WorkflowError):
    """A destination name would land outside its job directory."""


def check_file_name(name: str) -> str | None:
    """Why ``name`` is not a safe relative destination file name, or ``None`` if it is."""
    if not isinstance(name, str) or not name or "\x00" in name:
        return "a file name must be non-empty text without NUL"
    if name.startswith("/"):
        return f"file {name!r} is absolute; give a name relative to the destination"
    if ".." in name.split("/"):
        return f"file {name!r} contains '..'; it must stay inside the destination"
    if posixpath.normpath(name) in (".", ""):
        return f"file {name!r} names the directory itself"
    return None


def confine_path(root: Path, name: str) -> Path:
    """``root/name`` if it stays inside ``root`` after resolving symlinks; else ``PathEscape``.

    The last component must not be a symlink at all (``open_destination`` also opens with
    ``O_NOFOLLOW``, so a link planted after this check is refused too).
    """
    problem = check_file_name(name)
    if problem is not None:
        raise PathEscape(problem)
    base = Path(os.path.realpath(root))
    candidate = base.joinpath(*[p for p in name.split("/") if p not in ("", ".")])
    if candidate.is_symlink():
        raise PathEscape(f"file {name!r} is a symbolic link; refusing to follow it")
    real = Path(os.path.realpath(candidate))
    if real == base or base not in real.parents:
        raise PathEscape(f"file {name!r} escapes {root} through a symbolic link")
    return real  # resolved, so a directory link swapped after this check changes nothing


def open_destination(root: Path, name: str, *, truncate: bool = False) -> int:
    """Open (create) the confined destination for writing; returns an fd for ``os.pwrite``."""
    path = confine_path(root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    confine_path(root, name)  # the directories we just made are ours; re-check the links
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if truncate else 0)
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        raise PathEscape(f"cannot open {name!r} in {root}: {exc.strerror}") from None


def hash_file(path: Path, block: int = DEFAULT_CHUNK_SIZE) -> tuple[int, bytes]:
    """(size, sha256) of a file, read in blocks (never whole)."""
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while data := handle.read(block):
            hasher.update(data)
            size += len(data)
    return size, hasher.digest()


SUMS_SUFFIX = ".sums"
"""``NAME.part.sums``: the sha256 of each chunk written to ``NAME.part``, 32 bytes each."""


def resume_state(path: Path, chunk_size: int,
                 sums: Path | None = None) -> tuple[int, hashlib._Hash]:
    """For a receiver restarting on a partial file: (complete chunks, hasher over them).

    A torn last chunk (the process died mid-write) is cut off; those bytes come again.
    With ``sums`` (the chunk hashes the driver recorded as it wrote), every chunk on disk is
    re-verified and the file is cut at the first chunk that is missing, torn or differs
    from its recorded hash: chunks are not fsynced one by one, so after a power loss the
    file may hold less (or zeros) where a chunk was acknowledged, and only what verifies
    counts.  Without a ``sums`` file (``sums`` given but absent) nothing counts.
    """
    hasher = hashlib.sha256()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, hasher
    recorded: bytes | None = None
    if sums is not None:
        try:
            recorded = sums.read_bytes()
        except FileNotFoundError:
            recorded = b""
    chunks = size // chunk_size
    if recorded is not None:
        chunks = min(chunks, len(recorded) // 32)
    kept = 0
    with open(path, "r+b") as handle:
        while kept < chunks:
            data = handle.read(chunk_size)
            if recorded is not None and \
                    hashlib.sha256(data).digest() != recorded[kept * 32:kept * 32 + 32]:
                break
            hasher.update(data)
            kept += 1
        handle.truncate(kept * chunk_size)
    if sums is not None and recorded is not None and len(recorded) != kept * 32:
        with open(sums, "r+b") as handle:
            handle.truncate(kept * 32)
    return kept, hasher
