"""Transport messages for the workflow protocol (0x03xx) and output transfers (0x05xx).

Why a generic codec: the scheduler's commands and reports (``messages.py``) and the transfer
core's control messages (``transfer.py``) are frozen dataclasses with plain field types.  One
converter, driven by their type hints, turns any of them into canonical bencode and back, so
adding a field to a core message needs no hand-written encoder.  Decoding is strict: an
unknown kind, a missing field or a value of the wrong type is a ``RemoteProtocolError``
naming the field, raised inside the transport's decoder (which turns it into an error reply),
never inside a core.

Chunks carry up to 16 MiB of data, so they use a binary layout instead of bencode: bencode
decoding copies the body several times and re-encodes it to check canonical form.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Union

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.identity.keys import PeerId
from rnn_tui.transport.framing import FrameError
from rnn_tui.transport.messages import bdecode_dict, bencode, register_message
from rnn_tui.workflow import messages as wm
from rnn_tui.workflow import transfer as tc
from rnn_tui.workflow.model import Limits

__all__ = [
    "to_plain", "from_plain",
    "WfCommand", "WfReply", "WfReport", "WfLog", "WfReceipt",
    "XferOffer", "XferControl", "XferPull", "XferChunk",
]

_COMMANDS: dict[str, type] = {c.__name__: c for c in (
    wm.RequestJob, wm.StartJob, wm.DeliverOutputs, wm.CancelJob, wm.ReleaseJob)}
_REPORTS: dict[str, type] = {c.__name__: c for c in (
    wm.JobAccepted, wm.JobRefused, wm.JobStatusReported, wm.JobExited, wm.OutputsDelivered,
    wm.JobLost, wm.Heartbeat)}
_XFER_CONTROL: dict[str, type] = {c.__name__: c for c in (
    tc.Offer, tc.ResumeFrom, tc.Ack, tc.End, tc.Completed, tc.Aborted)}
_NESTED: dict[str, type] = {c.__name__: c for c in (
    wm.InputRoute, wm.OutputRoute, wm.OutputDigest, Limits)}
_HINTS: dict[type, dict[str, Any]] = {}
MAX_TEXT = 64 * 1024


def _bad(where: str, why: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{where}: {why}", FrameError.BAD_BODY)


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        module = __import__(cls.__module__, fromlist=["_"])
        namespace = {**vars(module), **_NESTED, "PeerId": PeerId, "Limits": Limits}
        hints = typing.get_type_hints(cls, globalns=namespace)
        _HINTS[cls] = hints
    return hints


def to_plain(value: Any) -> Any:
    """A dataclass (or a value inside one) as bencodable data: dicts, lists, bytes, ints.

    ``None`` fields are left out; floats travel as their ``repr`` text (bencode has none).
    """
    kind = type(value)
    if kind is str or kind is bytes or kind is int:
        return value  # the common leaves first: a log batch is hundreds of strings
    if kind is tuple and all(type(v) is str for v in value):
        return list(value)
    if isinstance(value, PeerId):
        return value.key
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is not None:
                out[f.name] = to_plain(item)
        return out
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def from_plain(cls: type, data: Any, where: str) -> Any:
    """Inverse of :func:`to_plain` for dataclass ``cls``; strict about every field."""
    if not isinstance(data, dict):
        raise _bad(where, "expected a dict")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        raw = data.get(f.name.encode())
        if raw is None:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                if _optional(hints[f.name]):
                    kwargs[f.name] = None
                    continue
                raise _bad(where, f"field {f.name!r} is missing")
            continue
        kwargs[f.name] = _convert(hints[f.name], raw, f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise _bad(where, str(exc)) from None


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)


def _texts(raw: list[Any], where: str) -> tuple[str, ...]:
    """``tuple[str, ...]`` without a per-item call (log batches carry hundreds of lines)."""
    try:
        if all(type(item) is bytes and len(item) <= MAX_TEXT for item in raw):
            return tuple(item.decode() for item in raw)
    except UnicodeDecodeError:
        pass
    return tuple(_convert(str, item, f"{where}[{i}]") for i, item in enumerate(raw))


def _convert(hint: Any, raw: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(options) != 1:
            raise _bad(where, "ambiguous union")
        return _convert(options[0], raw, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(raw, list):
            raise _bad(where, "expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            if len(raw) > 4096:
                raise _bad(where, "too many items")
            if args[0] is str:
                return _texts(raw, where)
            return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(raw))
        if len(raw) != len(args):
            raise _bad(where, f"expected {len(args)} items")
        return tuple(_convert(a, item, f"{where}[{i}]") for i, (a, item) in enumerate(zip(args, raw, strict=True)))
    if hint is PeerId:
        if not isinstance(raw, bytes) or len(raw) != 32:
            raise _bad(where, "expected a 32-byte peer id")
        return PeerId(raw)
    if hint is bytes:
        if not isinstance(raw, bytes):
            raise _bad(where, "expected bytes")
        return raw
    if hint is str:
        if not isinstance(raw, bytes) or len(raw) > MAX_TEXT:
            raise _bad(where, "expected text")
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise _bad(where, "text is not UTF-8") from None
    if hint is bool:
        if raw not in (0, 1) or not isinstance(raw, int):
            raise _bad(where, "expected 0 or 1")
        return bool(raw)
    if hint is int:
        if not isinstance(raw, int):
            raise _bad(where, "expected an integer")
        return raw
    if hint is float:
        text = _convert(str, raw, where)
        try:
            return float(text)
        except ValueError:
            raise _bad(where, f"{text!r} is not a number") from None
    if isinstance(hint, type) and issubclass(hint, Enum):
        text = _convert(str, raw, where)
        try:
            return hint(text)
        except ValueError:
            raise _bad(where, f"{text!r} is not a {hint.__name__}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_plain(hint, raw, where)
    raise _bad(where, f"cannot decode a {hint!r}")


def _encode_kind(value: Any) -> bytes:
    return bencode({"k": type(value).__name__, "b": to_plain(value)})


def _decode_kind(body: bytes, table: dict[str, type], what: str) -> Any:
    d = bdecode_dict(body, what)
    kind = d.get(b"k")
    cls = table.get(kind.decode(errors="replace")) if isinstance(kind, bytes) else None
    if cls is None:
        raise _bad(what, f"unknown kind {kind!r}")
    return from_plain(cls, d.get(b"b"), f"{what} {cls.__name__}")


# --------------------------------------------------------------------------- 0x03xx workflow


@register_message
@dataclass(frozen=True, slots=True)
class WfCommand:
    """Requester → executor: one scheduler command (request; the reply is ``WfReply``)."""

    TYPE: ClassVar[int] = 0x0301
    command: wm.Command
    resume: bool = False
    """The run opted in to resume: the executor may reuse outputs of an identical earlier
    job (same image, parameters and input hashes) and keeps this job's outputs for reuse."""

    def encode(self) -> bytes:
        body: dict[str, Any] = {"k": type(self.command).__name__, "b": to_plain(self.command)}
        if self.resume:
            body["r"] = 1
        return bencode(body)

    @classmethod
    def decode(cls, body: bytes) -> WfCommand:
        command = _decode_kind(body, _COMMANDS, "workflow command")
        return cls(command, bdecode_dict(body, "workflow command").get(b"r") == 1)


@register_message
@dataclass(frozen=True, slots=True)
class WfReply:
    """The answer to a command or a report: a report (accept/refuse) or a bare ``ok``."""

    TYPE: ClassVar[int] = 0x0302
    report: wm.Report | None = None

    def encode(self) -> bytes:
        if self.report is None:
            return bencode({"k": "ok"})
        return _encode_kind(self.report)

    @classmethod
    def decode(cls, body: bytes) -> WfReply:
        d = bdecode_dict(body, "workflow reply")
        if d.get(b"k") == b"ok":
            return cls()
        return cls(_decode_kind(body, _REPORTS, "workflow reply"))


@register_message
@dataclass(frozen=True, slots=True)
class WfReport:
    """Executor → requester: status, exit, delivery, heartbeat (request or one-way)."""

    TYPE: ClassVar[int] = 0x0303
    report: wm.Report

    def encode(self) -> bytes:
        return _encode_kind(self.report)

    @classmethod
    def decode(cls, body: bytes) -> WfReport:
        return cls(_decode_kind(body, _REPORTS, "workflow report"))


@dataclass(frozen=True, slots=True)
class _WfLogHead:
    """The fields of ``WfLog`` other than its lines (checked by ``from_plain``)."""

    run_id: str
    job: str
    attempt: int
    stream: str


@register_message
@dataclass(frozen=True, slots=True)
class WfLog:
    """Executor → requester: lines a running job wrote (one-way, batched per read).

    On the wire the lines travel as one text joined by newlines plus their count, not as a
    bencoded list: a job printing 20 000 lines would otherwise cost 20 000 string items to
    encode and decode (about 70 ms each way per job on the benchmark's machine).  A line
    therefore cannot contain a newline (the executor splits on them).
    """

    TYPE: ClassVar[int] = 0x0304
    run_id: str
    job: str
    attempt: int
    stream: str
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        if any("\n" in line for line in self.lines):
            raise ValueError("a log line cannot contain a newline")

    def encode(self) -> bytes:
        return bencode({b"run_id": self.run_id.encode(), b"job": self.job.encode(),
                        b"attempt": self.attempt, b"stream": self.stream.encode(),
                        b"count": len(self.lines), b"text": "\n".join(self.lines).encode()})

    @classmethod
    def decode(cls, body: bytes) -> WfLog:
        where = "workflow log"
        data = bdecode_dict(body, where)
        text, count = data.get(b"text"), data.get(b"count")
        if type(text) is not bytes or type(count) is not int or not 0 <= count <= 4096:
            raise _bad(where, "expected 'text' bytes and a 'count' of at most 4096 lines")
        try:
            lines = tuple(text.decode().split("\n")) if count else ()
        except UnicodeDecodeError:
            raise _bad(where, "text is not UTF-8") from None
        if len(lines) != count or (count == 0 and text):
            raise _bad(where, f"'text' holds {len(lines)} lines, 'count' says {count}")
        if any(len(line) > MAX_TEXT for line in lines):
            raise _bad(where, f"a line is longer than {MAX_TEXT} characters")
        head: _WfLogHead = from_plain(_WfLogHead, data, where)
        return cls(head.run_id, head.job, head.attempt, head.stream, lines)


@register_message
@dataclass(frozen=True, slots=True)
class WfReceipt:
    """Executor → requester: a signed receipt (``receipts.Receipt`` body + signature)."""

    TYPE: ClassVar[int] = 0x0305
    body: bytes
    signature: bytes

    def encode(self) -> bytes:
        return bencode({"b": self.body, "s": self.signature})

    @classmethod
    def decode(cls, body: bytes) -> WfReceipt:
        d = bdecode_dict(body, "receipt")
        b, s = d.get(b"b"), d.get(b"s")
        if not isinstance(b, bytes) or not isinstance(s, bytes) or len(s) != 64:
            raise _bad("receipt", "needs a body and a 64-byte signature")
        return cls(b, s)


# --------------------------------------------------------------------------- 0x05xx transfer


@register_message
@dataclass(frozen=True, slots=True)
class XferOffer:
    """Sender → receiver (request): an output for one route, and the transfer core's Offer.

    The route fields let the receiver check the offer against what it holds (run, job,
    interface); the reply is ``XferControl(ResumeFrom)`` or ``XferControl(Aborted)``.
    """

    TYPE: ClassVar[int] = 0x0501
    run_id: str
    source_job: str
    attempt: int
    connection: int
    target_job: str | None
    target: str | None
    offer: tc.Offer
    sha256: bytes

    def encode(self) -> bytes:
        return bencode(to_plain(self))

    @classmethod
    def decode(cls, body: bytes) -> XferOffer:
        msg: XferOffer = from_plain(cls, bdecode_dict(body, "transfer offer"), "transfer offer")
        return msg


@register_message
@dataclass(frozen=True, slots=True)
class XferControl:
    """Any small transfer-core message (ResumeFrom, Ack, End, Completed, Aborted)."""

    TYPE: ClassVar[int] = 0x0502
    message: tc.TransferMessage

    def encode(self) -> bytes:
        return _encode_kind(self.message)

    @classmethod
    def decode(cls, body: bytes) -> XferControl:
        return cls(_decode_kind(body, _XFER_CONTROL, "transfer control"))


@register_message
@dataclass(frozen=True, slots=True)
class XferPull:
    """Receiver → sender (streamed request): send the chunks of ``transfer_id``."""

    TYPE: ClassVar[int] = 0x0503
    transfer_id: str

    def encode(self) -> bytes:
        return bencode({"t": self.transfer_id})

    @classmethod
    def decode(cls, body: bytes) -> XferPull:
        d = bdecode_dict(body, "transfer pull")
        t = d.get(b"t")
        if not isinstance(t, bytes) or len(t) > 128:
            raise _bad("transfer pull", "bad transfer id")
        return cls(t.decode(errors="replace"))


_CHUNK_HEAD = struct.Struct(">H32sQ")  # id length, sha256, index


@register_message
@dataclass(frozen=True, slots=True)
class XferChunk:
    """One chunk: ``[id length][sha256][index][id][data]`` (binary, no copies of data)."""

    TYPE: ClassVar[int] = 0x0504
    chunk: tc.Chunk

    def encode(self) -> bytes:
        tid = self.chunk.transfer_id.encode()
        return b"".join((_CHUNK_HEAD.pack(len(tid), self.chunk.sha256, self.chunk.index), tid,
                         self.chunk.data))

    @classmethod
    def decode(cls, body: bytes) -> XferChunk:
        if len(body) < _CHUNK_HEAD.size:
            raise _bad("transfer chunk", "truncated header")
        id_len, sha, index = _CHUNK_HEAD.unpack_from(body)
        start = _CHUNK_HEAD.size + id_len
        if id_len > 128 or len(body) < start:
            raise _bad("transfer chunk", "bad transfer id length")
        tid = body[_CHUNK_HEAD.size:start].decode(errors="replace")
        return cls(tc.Chunk(tid, index, sha, body[start:]))
