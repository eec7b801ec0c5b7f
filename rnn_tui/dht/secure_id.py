"""BEP 42 secure node ids: the first 21 bits of our id derive from our external IP.

Why: it makes it expensive to place many Sybil nodes next to a chosen target, and
well-behaved peers (libtorrent) prefer nodes whose id matches their address.  We learn our
external IP from the ``ip`` field of replies and regenerate our id once several peers
agree on it.  Loopback and private addresses are exempt (the BEP says so).
"""

from __future__ import annotations

import ipaddress

_CRC32C_TABLE: list[int] = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _ip_crc(ip: str, r: int) -> int:
    packed = int.from_bytes(ipaddress.IPv4Address(ip).packed, "big")
    masked = (packed & 0x030F3FFF) | ((r & 0x7) << 29)
    return crc32c(masked.to_bytes(4, "big"))


def is_exempt(ip: str) -> bool:
    """Addresses BEP 42 does not apply to (loopback, private, link-local, non-IPv4)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return True
    return not isinstance(addr, ipaddress.IPv4Address) or not addr.is_global


def secure_node_id(ip: str, random20: bytes) -> bytes:
    """A BEP 42 id for ``ip``; the non-derived bits come from ``random20`` (20 random bytes)."""
    r = random20[19]
    crc = _ip_crc(ip, r)
    head = bytes([(crc >> 24) & 0xFF, (crc >> 16) & 0xFF, ((crc >> 8) & 0xF8) | (random20[2] & 0x7)])
    return head + random20[3:19] + bytes([r])


def is_secure_for(node_id: bytes, ip: str) -> bool:
    if is_exempt(ip):
        return True
    crc = _ip_crc(ip, node_id[19])
    return (node_id[0] == (crc >> 24) & 0xFF and node_id[1] == (crc >> 16) & 0xFF
            and (node_id[2] & 0xF8) == ((crc >> 8) & 0xF8))
