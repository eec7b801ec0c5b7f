"""Length-prefixed typed frames on QUIC streams (sans-IO: bytes in, frames out).

Why a fixed binary header: the original re-parsed JSON until it happened to decode.  A
fixed 12-byte header tells the receiver, before it buffers anything, what the frame is
and exactly how long it is, so an oversized length is refused at once instead of being
buffered, and a truncated stream is detected at end-of-stream.

Header (big-endian, 12 bytes)::

    0      1      2      4            8            12
    +------+------+------+------------+------------+--------------+
    | ver  |flags | type | request id | body len   | body ...     |
    | u8   | u8   | u16  | u32        | u32        | len bytes    |
    +------+------+------+------------+------------+--------------+

``ver`` is :data:`FRAME_VERSION`; a frame of another version is a protocol error.
``type`` is a message type code from :mod:`rnn_tui.transport.messages`.
``flags`` say how the frame relates to a request (see :class:`Flags`).
The body is the message's own encoding (bencode, or raw bytes for binary chunks).

This module never touches a socket or a clock; the session driver feeds it the bytes of
one QUIC stream and acts on the frames and errors it returns.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from rnn_tui.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "FRAME_VERSION",
    "HEADER",
    "HEADER_SIZE",
    "DEFAULT_MAX_BODY",
    "FrameError",
    "Flags",
    "Frame",
    "FrameDecoder",
    "encode_frame",
]

FRAME_VERSION = 1
HEADER = struct.Struct(">BBHII")
HEADER_SIZE = HEADER.size  # 12
#: Largest body a decoder accepts unless told otherwise (4 MiB).  Bulk data travels as
#: many chunks of a streamed reply, never as one giant frame.
DEFAULT_MAX_BODY = 4 * 1024 * 1024
_MAX_U32 = 0xFFFF_FFFF


class FrameError(enum.IntEnum):
    """Application error codes used to reset a stream whose framing is broken.

    They double as ``ErrorReply.code`` values so that a peer sees the same number
    whether we could still answer or had to reset the stream.
    """

    BAD_VERSION = 0x101
    OVERSIZE = 0x102
    TRUNCATED = 0x103
    UNKNOWN_TYPE = 0x104
    BAD_BODY = 0x105
    UNEXPECTED = 0x106
    OVERFLOW = 0x107  # the peer sent faster than we consume and hit our buffer limit
    BUSY = 0x108  # too many concurrent requests from this peer
    HANDLER_FAILED = 0x109
    CANCELLED = 0x10A


class Flags(enum.IntFlag):
    """How a frame relates to a request.

    - no flag: a request that expects exactly one reply;
    - ``ONE_WAY``: a message that expects no reply;
    - ``STREAM_REQUEST``: a request whose reply is a stream of chunks;
    - ``REPLY``: the single reply to a request;
    - ``CHUNK``: one chunk of a streamed reply (more may follow);
    - ``END``: the streamed reply is complete (the body, if any, is the last chunk);
    - ``ERROR``: the body is an ``ErrorReply`` (combined with ``REPLY`` or ``END``);
    - ``CREDIT``: the requester grants the responder more chunks (body: u32 count).
    """

    NONE = 0
    ONE_WAY = 0x01
    STREAM_REQUEST = 0x02
    REPLY = 0x04
    CHUNK = 0x08
    END = 0x10
    ERROR = 0x20
    CREDIT = 0x40


_KNOWN_FLAGS = int(
    Flags.ONE_WAY | Flags.STREAM_REQUEST | Flags.REPLY | Flags.CHUNK | Flags.END
    | Flags.ERROR | Flags.CREDIT
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame: header fields plus the undecoded body bytes."""

    msg_type: int
    flags: Flags
    request_id: int
    body: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.msg_type <= 0xFFFF:
            raise LocalProtocolError(f"frame type {self.msg_type} is outside 0..65535")
        if not 0 <= self.request_id <= _MAX_U32:
            raise LocalProtocolError(f"request id {self.request_id} is outside 0..2**32-1")


def encode_frame(frame: Frame, *, max_body: int = DEFAULT_MAX_BODY) -> bytes:
    """Header plus body.  A body over ``max_body`` is our own bug: LocalProtocolError."""
    size = len(frame.body)
    if size > max_body:
        raise LocalProtocolError(
            f"frame body of {size} bytes exceeds the maximum of {max_body} "
            f"(type {frame.msg_type:#06x}); split it into a streamed reply"
        )
    return HEADER.pack(FRAME_VERSION, int(frame.flags), frame.msg_type, frame.request_id,
                       size) + frame.body


class FrameDecoder:
    """Incremental decoder for the bytes of one stream.

    ``feed(data)`` returns every frame completed by ``data``.  A bad header raises
    :class:`RemoteProtocolError` with a :class:`FrameError` code *before* the body is
    buffered, so a peer cannot make us hold more than ``max_body + HEADER_SIZE`` bytes.
    After an error the decoder stays failed: the stream must be reset.
    ``eof()`` checks that the stream did not end in the middle of a frame.
    """

    __slots__ = ("max_body", "_buf", "_need", "_header", "_failed")

    def __init__(self, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.max_body = max_body
        self._buf = bytearray()
        self._header: tuple[int, int, int, int] | None = None  # flags, type, req id, len
        self._need = HEADER_SIZE
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame that is not complete yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        if self._failed:
            raise RemoteProtocolError("stream framing already failed", FrameError.UNEXPECTED)
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= self._need:
            if self._header is None:
                version, flags, msg_type, request_id, length = HEADER.unpack_from(self._buf)
                if version != FRAME_VERSION:
                    self._failed = True
                    raise RemoteProtocolError(
                        f"frame version {version} is not {FRAME_VERSION}", FrameError.BAD_VERSION)
                if flags & ~_KNOWN_FLAGS:
                    self._failed = True
                    raise RemoteProtocolError(
                        f"frame flags {flags:#04x} has unknown bits", FrameError.UNEXPECTED)
                if length > self.max_body:
                    self._failed = True
                    raise RemoteProtocolError(
                        f"frame body length {length} exceeds the maximum of {self.max_body}",
                        FrameError.OVERSIZE)
                del self._buf[:HEADER_SIZE]
                self._header = (flags, msg_type, request_id, length)
                self._need = length
                continue
            flags, msg_type, request_id, length = self._header
            body = bytes(self._buf[:length])
            del self._buf[:length]
            frames.append(Frame(msg_type, Flags(flags), request_id, body))
            self._header = None
            self._need = HEADER_SIZE
        return frames

    def eof(self) -> None:
        """The stream ended: anything still buffered is a truncated frame."""
        if self._header is not None or self._buf:
            got = len(self._buf)
            want = self._need if self._header is not None else HEADER_SIZE
            self._failed = True
            where = "body" if self._header is not None else "header"
            raise RemoteProtocolError(
                f"stream ended inside a frame {where} ({got} of {want} bytes)",
                FrameError.TRUNCATED)
