"""Ed25519 mutual TLS for aioquic that binds a QUIC connection to a peer id.

Why: the original announced a peer id in a message and never checked it.  Here the
handshake itself proves the id: each node presents a self-signed certificate for its
Ed25519 identity key, and TLS 1.3's CertificateVerify (checked by aioquic even with
``verify_mode=CERT_NONE``) proves the peer holds that key.  After the handshake we read
the peer's certificate, require an Ed25519 key, and that key *is* the peer id.

Private aioquic attributes used (pinned by ``aioquic>=1.7,<1.8`` and by
``tests/integration/test_transport_tls.py``):

- ``Context._request_client_certificate``: an aioquic server only asks for a client
  certificate when this is set.  The TLS context is created in
  ``QuicConnection._initialize``, so :class:`MutualTlsConnection` sets it right after.
- ``Context._peer_certificate``: the certificate the peer presented.
- ``Context._supported_groups``: set to X25519 alone (see :class:`MutualTlsConnection`).
- ``QuicConnection._local_active_connection_id_limit``: lowered to 2 (same place).

No session tickets and no 0-RTT: a resumed session carries no certificate, so we never
pass a ticket handler or a ticket.
"""

from __future__ import annotations

import datetime
import functools
import ssl
from typing import Any

import aioquic.quic.connection as _aioquic_connection
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicProtocolVersion
from aioquic.tls import Group
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.identity import Identity, PeerId

__all__ = [
    "ACTIVE_CONNECTION_ID_LIMIT",
    "ALPN",
    "DEFAULT_MAX_DATA",
    "DEFAULT_MAX_STREAM_DATA",
    "MAX_DATAGRAM_FRAME_SIZE",
    "KEY_EXCHANGE_GROUPS",
    "make_certificate",
    "make_configuration",
    "MutualTlsConnection",
    "peer_id_from_connection",
    "QUIC_VERSIONS",
]

ALPN = "remote-network/1"
#: Flow-control windows: big enough for a real link's bandwidth-delay product
#: (16 MiB covers ~1 Gbit/s at 130 ms RTT).  aioquic allocates nothing up front for them.
DEFAULT_MAX_STREAM_DATA = 16 * 1024 * 1024
DEFAULT_MAX_DATA = 32 * 1024 * 1024
CERT_VALIDITY = datetime.timedelta(days=3650)
#: RFC 9221 transport parameter we advertise: we accept DATAGRAM frames up to this size.
#: Advertising it is what tells a peer it may send them (sending one to a peer that did
#: not advertise it kills the connection); it is larger than any packet we use.
MAX_DATAGRAM_FRAME_SIZE = 65535
#: QUIC v1 only, as the endpoint's demultiplexer (``endpoint.SUPPORTED_VERSIONS``).
#: aioquic's default also lists v2, which costs a second set of Initial keys per
#: connection on both sides and is never negotiated between our nodes.
QUIC_VERSIONS = [QuicProtocolVersion.VERSION_1]
#: The active_connection_id_limit we announce (RFC 9000's minimum).  aioquic's 8 makes
#: each side issue 7 spare connection ids right after the handshake (NEW_CONNECTION_ID
#: frames, one endpoint-table entry each); nothing here rotates ids, so one spare (for a
#: peer that does) is enough.
ACTIVE_CONNECTION_ID_LIMIT = 2


def _memoize_frame_epochs() -> None:
    """Build aioquic's per-frame epoch sets once per process, not once per connection.

    Why: ``QuicConnection.__init__`` builds its frame-handler table with 33 calls of the
    pure module function ``EPOCHS(shortcut)`` (a frozenset from a short string), about half
    of the constructor's CPU (55 of 110 µs here) and on every dial's critical path, on
    both sides.  The sets are immutable, so sharing them is safe.  aioquic is pinned
    (<1.8); tests/unit/test_transport_tls.py checks the function is still there and equal.
    """
    epochs = getattr(_aioquic_connection, "EPOCHS", None)
    if callable(epochs) and not hasattr(epochs, "cache_info"):
        _aioquic_connection.EPOCHS = functools.lru_cache(maxsize=64)(epochs)


_memoize_frame_epochs()


def make_certificate(identity: Identity) -> tuple[x509.Certificate, ed25519.Ed25519PrivateKey]:
    """A self-signed certificate for the identity's Ed25519 key, and that key.

    Nothing checks the validity period or the names: the key is all that matters.
    The dates are fixed from the epoch so that a node with a wrong clock still works.
    """
    key = ed25519.Ed25519PrivateKey.from_private_bytes(identity.seed)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(identity.peer_id))])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(identity.peer_id.key[:16], "big") >> 1 or 1)
        .not_valid_before(start)
        .not_valid_after(start + CERT_VALIDITY * 3)
        .sign(key, algorithm=None)
    )
    return cert, key


def make_configuration(
    identity: Identity,
    *,
    is_client: bool,
    certificate: tuple[x509.Certificate, ed25519.Ed25519PrivateKey] | None = None,
    idle_timeout: float = 60.0,
    max_stream_data: int = DEFAULT_MAX_STREAM_DATA,
    max_data: int = DEFAULT_MAX_DATA,
    max_datagram_size: int | None = None,
    max_datagram_frame_size: int | None = MAX_DATAGRAM_FRAME_SIZE,
) -> QuicConfiguration:
    """aioquic configuration for our protocol: ALPN, our certificate, no CA checks."""
    cert, key = certificate if certificate is not None else make_certificate(identity)
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        verify_mode=ssl.CERT_NONE,
        idle_timeout=idle_timeout,
        max_stream_data=max_stream_data,
        max_data=max_data,
        max_datagram_frame_size=max_datagram_frame_size,
        supported_versions=list(QUIC_VERSIONS),
    )
    if max_datagram_size is not None:
        config.max_datagram_size = max_datagram_size
    config.certificate = cert
    config.private_key = key
    return config


#: The one key-exchange group we offer and accept.  aioquic's default client offers key
#: shares for P-256, P-384, X25519 and X448; generating the P-384 and X448 keys costs
#: ~0.6 ms of CPU per dial on the critical path and the server only ever uses one.
#: X25519 is a 128-bit-secure group like P-256 (equal cost here) and the usual first
#: choice of TLS stacks.  Older nodes offer X25519 among their shares, so both
#: directions still interoperate.
KEY_EXCHANGE_GROUPS = [Group.X25519]


class MutualTlsConnection(QuicConnection):
    """A QuicConnection whose server side requests the client's certificate.

    The flags live on the TLS context, which aioquic creates lazily in ``_initialize``:
    the server asks for a client certificate, and both sides offer/accept X25519 only.
    The announced active_connection_id_limit is set before aioquic serialises its
    transport parameters (also in ``_initialize``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local_active_connection_id_limit = ACTIVE_CONNECTION_ID_LIMIT

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        self.tls._supported_groups = list(KEY_EXCHANGE_GROUPS)
        if not self._is_client:
            self.tls._request_client_certificate = True


def peer_id_from_connection(quic: QuicConnection) -> PeerId:
    """The peer id proven by a completed handshake.

    Raises RemoteProtocolError when the peer presented no certificate or a key that is
    not Ed25519.  Call only after ``HandshakeCompleted``.
    """
    cert = getattr(quic.tls, "_peer_certificate", None)
    if cert is None:
        raise RemoteProtocolError("peer presented no certificate")
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise RemoteProtocolError(
            f"peer certificate key is {type(key).__name__}, not Ed25519")
    return PeerId(key.public_bytes(Encoding.Raw, PublicFormat.Raw))
