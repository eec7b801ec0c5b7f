"""The KRPC codec: canonical encoding, strict decoding, agreement with bencodepy."""

from __future__ import annotations

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.dht.codec import MAX_DATAGRAM, MAX_DEPTH, BencodeError, decode, encode
from rnn_tui.errors import RemoteProtocolError


def test_encode_sorts_keys_and_is_canonical() -> None:
    assert encode({b"b": 1, b"a": [b"x", -3, 0]}) == b"d1:al1:xi-3ei0ee1:bi1ee"
    assert encode(b"") == b"0:"
    assert encode(0) == b"i0e"


@pytest.mark.parametrize("value", [True, False, None, 1.5, "text", {"str-key": 1}])
def test_encode_refuses_values_that_would_change_meaning(value: object) -> None:
    with pytest.raises(BencodeError):
        encode(value)


@pytest.mark.parametrize("data, what", [
    (b"i03e", "leading zero"),
    (b"i-0e", "negative zero"),
    (b"i+3e", "plus sign"),
    (b"i 3e", "space"),
    (b"i1_0e", "underscore"),
    (b"ie", "empty integer"),
    (b"03:abc", "leading zero in length"),
    (b"d1:b0:1:a0:e", "unsorted keys"),
    (b"d1:a0:1:a0:e", "duplicate keys"),
    (b"d1:ae", "key without value"),
    (b"i1ee", "trailing bytes"),
    (b"5:abc", "short string"),
    (b"d", "unterminated dict"),
    (b"l", "unterminated list"),
    (b"di1e0:e", "integer key"),
    (b"x", "unknown token"),
    (b"", "empty"),
])
def test_decode_rejects_non_canonical(data: bytes, what: str) -> None:
    with pytest.raises(BencodeError):
        decode(data)


def test_decode_errors_are_remote_protocol_errors_with_offsets() -> None:
    with pytest.raises(RemoteProtocolError, match="offset 8"):
        decode(b"d1:b0:1:a0:e")


def test_decode_limits_size_and_depth() -> None:
    with pytest.raises(BencodeError, match="exceeds"):
        decode(b"%d:" % (MAX_DATAGRAM) + b"x" * MAX_DATAGRAM)
    deep = b"l" * (MAX_DEPTH + 1) + b"e" * (MAX_DEPTH + 1)
    with pytest.raises(BencodeError, match="deep"):
        decode(deep)
    ok = b"l" * MAX_DEPTH + b"e" * MAX_DEPTH
    assert decode(ok) is not None


def test_bencodepy_accepts_what_we_reject() -> None:
    """Why we do not decode with bencodepy directly (FACTS.md)."""
    assert bencodepy.decode(b"i03e") == (3,)
    with pytest.raises(BencodeError):
        decode(b"i03e")


bencodable = st.recursive(
    st.binary(max_size=20) | st.integers(min_value=-(2**70), max_value=2**70),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.binary(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(bencodable)
def test_roundtrip_and_agreement_with_bencodepy(value: object) -> None:
    data = encode(value)
    assert decode(data, max_size=1 << 20) == value
    reference = bencodepy.decode(data)
    if isinstance(reference, tuple):  # bencodepy wraps top-level scalars
        reference = reference[0]
    assert _normalise(reference) == value


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_either_decode_canonically_or_raise_bencode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except BencodeError:
        return
    assert encode(value) == data  # anything accepted is canonical


def _normalise(value: object) -> object:
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value
