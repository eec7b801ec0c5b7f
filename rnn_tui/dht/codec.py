"""Canonical, strict bencode for KRPC and BEP 44.

Why our own parser: bencodepy 0.9.5 accepts non-canonical input (``i03e``, ``i-0e``,
leading zeros in lengths, unsorted or duplicate keys, trailing bytes), does not sort keys
when encoding and encodes ``True`` as ``iTruee``; wrapping it with a re-encode-and-compare
check runs at ~19k decodes/s on our 2-core machines, half the 40k/s target (a get_peers
reply with 8 nodes).  This module therefore parses with a strict single-pass decoder that
is canonical *by construction* (~42k/s there), and encodes with sorted keys.  bencodepy
stays in the test suite as the reference implementation: every value we encode must decode
identically with bencodepy, and every input we accept must be one bencodepy accepts with
the same result (``tests/unit/test_dht_codec.py``).

Rules enforced on decode:
- integers ``i<n>e`` with no leading zeros, no ``-0``, no ``+`` or spaces;
- string lengths without leading zeros;
- dict keys are strings, strictly increasing (sorted, no duplicates);
- no trailing bytes; at most ``MAX_DATAGRAM`` bytes and ``MAX_DEPTH`` nesting levels.

Values map to Python as: string -> ``bytes``, integer -> ``int``, list -> ``list``,
dict -> ``dict[bytes, ...]``.  ``bool``, ``str``, ``float`` and ``None`` are refused on
encode, so a message can never silently change meaning.
"""

from __future__ import annotations

from typing import Any

from rnn_tui.errors import RemoteProtocolError

__all__ = ["BencodeError", "encode", "decode", "MAX_DATAGRAM", "MAX_DEPTH"]

#: Largest KRPC message we accept.  Our biggest message (a BEP 44 put with a 1000-byte
#: value and a 64-byte salt) is ~1.4 kB; a UDP datagram on the open Internet rarely
#: exceeds 1.5 kB.  2 kB leaves headroom for other clients' extra keys.
MAX_DATAGRAM = 2048
#: KRPC needs 4 levels (message, args, values list, item); BEP 44 values may nest more.
MAX_DEPTH = 32

#: KRPC error 203: "Protocol Error, such as a malformed packet".
PROTOCOL_ERROR = 203


class BencodeError(RemoteProtocolError):
    """Input is not canonical bencode (or a value cannot be encoded)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, PROTOCOL_ERROR)


# ---------------------------------------------------------------------------- encode


def encode(obj: object) -> bytes:
    """Canonical bencode of ``obj`` (bytes, int, list/tuple, dict with bytes keys)."""
    out: list[bytes] = []
    try:
        _encode(obj, out, 0)
    except RecursionError:
        raise BencodeError("value nested too deeply to encode") from None
    return b"".join(out)


def _encode(obj: object, out: list[bytes], depth: int) -> None:
    kind = type(obj)
    if kind is bytes:
        assert isinstance(obj, bytes)
        out.append(b"%d:" % len(obj))
        out.append(obj)
    elif kind is int:
        assert isinstance(obj, int)
        out.append(b"i%de" % obj)
    elif kind is dict or isinstance(obj, dict):
        assert isinstance(obj, dict)
        if depth >= MAX_DEPTH:
            raise BencodeError(f"value nested deeper than {MAX_DEPTH} levels")
        out.append(b"d")
        for key in sorted(obj):
            if type(key) is not bytes:
                raise BencodeError(f"dict key {key!r} is not bytes")
            out.append(b"%d:" % len(key))
            out.append(key)
            _encode(obj[key], out, depth + 1)
        out.append(b"e")
    elif kind is list or kind is tuple:
        assert isinstance(obj, list | tuple)
        if depth >= MAX_DEPTH:
            raise BencodeError(f"value nested deeper than {MAX_DEPTH} levels")
        out.append(b"l")
        for item in obj:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif kind is bytearray or kind is memoryview:
        data = bytes(obj)  # type: ignore[call-overload]
        out.append(b"%d:" % len(data))
        out.append(data)
    else:
        raise BencodeError(f"cannot bencode a value of type {kind.__name__}")


# ---------------------------------------------------------------------------- decode


def decode(data: bytes, *, max_size: int = MAX_DATAGRAM, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one canonical bencoded value that fills ``data`` exactly.

    Raises ``BencodeError`` naming the offset of the first problem.
    """
    if type(data) is not bytes:
        data = bytes(data)
    if len(data) > max_size:
        raise BencodeError(f"message of {len(data)} bytes exceeds the {max_size}-byte limit")
    if not data:
        raise BencodeError("empty message")
    try:
        obj, end = _decode(data, 0, max_depth)
    except IndexError:
        raise BencodeError("truncated bencode") from None
    except ValueError:
        # data.index() found no terminator
        raise BencodeError("truncated bencode (missing ':' or 'e')") from None
    if end != len(data):
        raise BencodeError(f"{len(data) - end} trailing bytes at offset {end}")
    return obj


def _bad_length(data: bytes, at: int) -> BencodeError:
    return BencodeError(f"bad string length at offset {at}: {data[at:at + 12]!r}")


def _decode(data: bytes, i: int, depth: int) -> tuple[Any, int]:
    # Hot path: written for speed (inlined string parsing inside dicts, no helper calls for
    # the common case).  Canonical form is checked as we go.
    c = data[i]
    if c == 100:  # 'd'
        if depth <= 0:
            raise BencodeError(f"nested too deeply at offset {i}")
        result: dict[bytes, Any] = {}
        i += 1
        prev = b""
        first = True
        index = data.index
        while True:
            c = data[i]
            if c == 101:  # 'e'
                return result, i + 1
            if 48 <= c <= 57 and data[i + 1] == 58:  # one-digit length: most keys
                colon = i + 1
                i = colon + 1 + c - 48
            else:
                colon = index(b":", i)
                digits = data[i:colon]
                if not digits.isdigit() or (c == 48 and colon - i > 1):
                    if 48 <= c <= 57:
                        raise _bad_length(data, i)
                    raise BencodeError(f"dict key at offset {i} is not a string")
                i = colon + 1 + int(digits)
            key = data[colon + 1:i]
            if len(key) != i - colon - 1:
                raise BencodeError(f"string at offset {colon + 1} runs past the end")
            if not first and key <= prev:
                raise BencodeError(f"dict key {key[:32]!r} at offset {colon + 1} is unsorted or duplicated")
            first = False
            prev = key
            c = data[i]
            if 48 <= c <= 57:
                if data[i + 1] == 58:
                    colon = i + 1
                    i = colon + 1 + c - 48
                else:
                    colon = index(b":", i)
                    digits = data[i:colon]
                    if not digits.isdigit() or (c == 48 and colon - i > 1):
                        raise _bad_length(data, i)
                    i = colon + 1 + int(digits)
                value = data[colon + 1:i]
                if len(value) != i - colon - 1:
                    raise BencodeError(f"string at offset {colon + 1} runs past the end")
                result[key] = value
            else:
                result[key], i = _decode(data, i, depth - 1)
    if 48 <= c <= 57:
        colon = data.index(b":", i)
        digits = data[i:colon]
        if not digits.isdigit() or (c == 48 and colon - i > 1):
            raise _bad_length(data, i)
        end = colon + 1 + int(digits)
        if end > len(data):
            raise BencodeError(f"string at offset {colon + 1} runs past the end")
        return data[colon + 1:end], end
    if c == 105:  # 'i'
        end = data.index(b"e", i)
        text = data[i + 1:end]
        body = text[1:] if text[:1] == b"-" else text
        if not body.isdigit() or (body[0] == 48 and len(text) > 1):
            raise BencodeError(f"non-canonical integer at offset {i}: {data[i:end + 1][:24]!r}")
        return int(text), end + 1
    if c == 108:  # 'l'
        if depth <= 0:
            raise BencodeError(f"nested too deeply at offset {i}")
        items: list[Any] = []
        i += 1
        while data[i] != 101:
            item, i = _decode(data, i, depth - 1)
            items.append(item)
        return items, i + 1
    raise BencodeError(f"invalid bencode token {bytes([c])!r} at offset {i}")
