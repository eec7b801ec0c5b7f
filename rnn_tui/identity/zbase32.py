"""z-base-32 (human-oriented base-32, as used by pkarr and Tahoe-LAFS).

Why z-base-32: a 32-byte key becomes 52 lowercase characters with no padding and no
look-alike symbols, short enough to read aloud and to select with a double click.
"""

from __future__ import annotations

ALPHABET = "ybndrfg8ejkmcpqxot1uwisza345h769"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def encode(data: bytes) -> str:
    bits = int.from_bytes(data, "big") if data else 0
    nbits = len(data) * 8
    nchars = (nbits + 4) // 5
    bits <<= nchars * 5 - nbits
    out = []
    for i in range(nchars - 1, -1, -1):
        out.append(ALPHABET[(bits >> (i * 5)) & 31])
    return "".join(out)


def decode(text: str, nbytes: int) -> bytes:
    """Decode ``text`` to exactly ``nbytes`` bytes; raise ``ValueError`` on any defect."""
    nchars = (nbytes * 8 + 4) // 5
    if len(text) != nchars:
        raise ValueError(f"expected {nchars} z-base-32 characters, got {len(text)}")
    bits = 0
    for c in text:
        try:
            bits = (bits << 5) | _INDEX[c]
        except KeyError:
            raise ValueError(f"invalid z-base-32 character {c!r}") from None
    extra = nchars * 5 - nbytes * 8
    if bits & ((1 << extra) - 1):
        raise ValueError("non-zero padding bits in z-base-32 text")
    return (bits >> extra).to_bytes(nbytes, "big")
