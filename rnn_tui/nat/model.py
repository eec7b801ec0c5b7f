"""Vocabulary shared by the NAT cores: addresses, NAT types, path types.

Why a module of its own: detection, relay and hole punching all speak about the same
things (an ``Addr``, a ``NatType``), and the drivers, node and TUI read them.  Keeping
them here lets each core stay importable alone, with no asyncio or socket anywhere.
"""

from __future__ import annotations

import enum
import ipaddress

__all__ = ["Addr", "NatType", "PathType", "check_addr", "is_private_addr"]

Addr = tuple[str, int]


class NatType(enum.Enum):
    """What we know of our own mapping behaviour, learned from peers' observations."""

    UNKNOWN = "unknown"
    PUBLIC = "public"  # reachable as-is: a peer dialled our observed address unsolicited
    EIM = "eim"  # endpoint-independent mapping: every peer sees the same ip:port
    EDM = "edm"  # endpoint-dependent (symmetric) mapping: each peer sees another port


class PathType(enum.Enum):
    """How a connection to a peer travels (what ``rnn peers`` shows)."""

    DIRECT = "direct"
    RELAYED = "relayed"


def check_addr(value: object) -> Addr | None:
    """``value`` as a valid unicast (ip, port), or None when it is not one.

    Peers send us addresses; anything that is not a literal IP with a port in 1..65535
    (no hostnames, no multicast, no unspecified address) is refused, so we never resolve
    names or spray packets at broadcast addresses on a peer's word.
    """
    if not isinstance(value, tuple) or len(value) != 2:
        return None
    host, port = value
    if not isinstance(host, str) or not isinstance(port, int) or isinstance(port, bool):
        return None
    if not 1 <= port <= 65535:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_multicast or ip.is_unspecified or (ip.version == 4 and str(ip) == "255.255.255.255"):
        return None
    return (str(ip), port)


def is_private_addr(addr: Addr) -> bool:
    """True for LAN-style addresses (RFC 1918, ULA, link-local, loopback)."""
    try:
        ip = ipaddress.ip_address(addr[0])
    except ValueError:
        return False
    if ip.is_loopback or ip.is_link_local:
        return True
    # is_private is also true for documentation ranges (TEST-NET), which the NAT lab uses
    # as its "internet"; only the real LAN ranges count as private here.
    lan_nets = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
    return any(ip in ipaddress.ip_network(net) for net in lan_nets if ip.version ==
               ipaddress.ip_network(net).version)
