"""Framing: round trips, incremental decoding, and every way a peer can break a frame."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnn_tui.errors import LocalProtocolError, RemoteProtocolError
from rnn_tui.transport.framing import (
    FRAME_VERSION,
    HEADER,
    HEADER_SIZE,
    Flags,
    Frame,
    FrameDecoder,
    FrameError,
    encode_frame,
)


def test_header_is_twelve_bytes_and_big_endian() -> None:
    data = encode_frame(Frame(0x0102, Flags.REPLY, 0x01020304, b"abc"))
    assert HEADER_SIZE == 12
    assert data[:12] == bytes([FRAME_VERSION, 0x04, 0x01, 0x02, 1, 2, 3, 4, 0, 0, 0, 3])
    assert data[12:] == b"abc"


def test_decoder_handles_byte_by_byte_input() -> None:
    frames = [Frame(1, Flags.NONE, 7, b"hello"), Frame(8, Flags.CHUNK, 7, b""),
              Frame(2, Flags.REPLY | Flags.ERROR, 9, bytes(range(256)))]
    wire = b"".join(encode_frame(f) for f in frames)
    dec = FrameDecoder()
    out: list[Frame] = []
    for i in range(len(wire)):
        out += dec.feed(wire[i:i + 1])
    assert out == frames
    dec.eof()  # nothing left over


@given(st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0x7F), st.integers(0, 2**32 - 1),
                          st.binary(max_size=300)), max_size=8),
       st.lists(st.integers(1, 50), min_size=1, max_size=20))
def test_round_trip_with_arbitrary_splits(specs: list[tuple[int, int, int, bytes]],
                                          cuts: list[int]) -> None:
    frames = [Frame(t, Flags(f), r, b) for t, f, r, b in specs]
    wire = b"".join(encode_frame(f) for f in frames)
    dec = FrameDecoder()
    out: list[Frame] = []
    pos = 0
    i = 0
    while pos < len(wire):
        step = cuts[i % len(cuts)]
        out += dec.feed(wire[pos:pos + step])
        pos += step
        i += 1
    assert out == frames
    dec.eof()


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    dec = FrameDecoder(max_body=1000)
    header = HEADER.pack(FRAME_VERSION, 0, 1, 1, 1001)
    with pytest.raises(RemoteProtocolError) as err:
        dec.feed(header)  # the body has not been sent: nothing is buffered for it
    assert err.value.code == FrameError.OVERSIZE
    assert "1001" in str(err.value)
    with pytest.raises(RemoteProtocolError):
        dec.feed(b"more")  # a failed decoder stays failed


def test_maximum_size_body_is_accepted() -> None:
    dec = FrameDecoder(max_body=1000)
    assert dec.feed(encode_frame(Frame(1, Flags.NONE, 1, b"x" * 1000), max_body=1000))[0].body == b"x" * 1000


def test_wrong_version_and_unknown_flags() -> None:
    with pytest.raises(RemoteProtocolError) as err:
        FrameDecoder().feed(HEADER.pack(2, 0, 1, 1, 0))
    assert err.value.code == FrameError.BAD_VERSION
    with pytest.raises(RemoteProtocolError) as err:
        FrameDecoder().feed(HEADER.pack(FRAME_VERSION, 0x80, 1, 1, 0))
    assert err.value.code == FrameError.UNEXPECTED


@pytest.mark.parametrize("cut", [1, 5, HEADER_SIZE, HEADER_SIZE + 3])
def test_truncated_stream_is_detected_at_eof(cut: int) -> None:
    wire = encode_frame(Frame(1, Flags.NONE, 1, b"0123456789"))
    dec = FrameDecoder()
    assert dec.feed(wire[:cut]) == []
    with pytest.raises(RemoteProtocolError) as err:
        dec.eof()
    assert err.value.code == FrameError.TRUNCATED


def test_buffered_never_exceeds_one_frame() -> None:
    dec = FrameDecoder(max_body=100)
    wire = encode_frame(Frame(1, Flags.NONE, 1, b"a" * 100), max_body=100) * 50
    for i in range(0, len(wire), 37):
        dec.feed(wire[i:i + 37])
        assert dec.buffered <= 100 + HEADER_SIZE


def test_encoding_an_oversized_body_is_our_bug() -> None:
    with pytest.raises(LocalProtocolError, match="exceeds the maximum"):
        encode_frame(Frame(1, Flags.NONE, 1, b"x" * 11), max_body=10)
    with pytest.raises(LocalProtocolError):
        Frame(0x10000, Flags.NONE, 1, b"")
    with pytest.raises(LocalProtocolError):
        Frame(1, Flags.NONE, 2**32, b"")
