"""Ed25519 mutual TLS, pinned against aioquic's private attributes, without sockets.

Two ``MutualTlsConnection``s exchange datagrams in memory (as in aioquic's own
tests), so these tests prove the handshake behaviour we rely on: the server asks for
the client certificate, both sides learn the other's Ed25519 key, a client without a
certificate is detectable, and a certificate for a key the peer does not hold fails.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from aioquic.buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import pull_quic_header
from aioquic.tls import Group
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.identity import Identity
from rnn_tui.transport.tls import (
    ACTIVE_CONNECTION_ID_LIMIT,
    ALPN,
    KEY_EXCHANGE_GROUPS,
    QUIC_VERSIONS,
    MutualTlsConnection,
    make_certificate,
    make_configuration,
    peer_id_from_connection,
)

CLIENT_ADDR = ("127.0.0.1", 1111)
SERVER_ADDR = ("127.0.0.1", 2222)


def run_handshake(client: QuicConnection, make_server: Callable[..., QuicConnection]
                  ) -> QuicConnection:
    """Drive both sides to quiescence; the server is built from the client's first Initial."""
    now = 0.0
    client.connect(SERVER_ADDR, now=now)
    first = client.datagrams_to_send(now=now)
    header = pull_quic_header(Buffer(data=first[0][0]), host_cid_length=8)
    server = make_server(original_destination_connection_id=header.destination_cid)
    for data, _addr in first:
        server.receive_datagram(data, CLIENT_ADDR, now=now)
    for _ in range(20):
        moved = False
        for data, _addr in client.datagrams_to_send(now=now):
            server.receive_datagram(data, CLIENT_ADDR, now=now)
            moved = True
        for data, _addr in server.datagrams_to_send(now=now):
            client.receive_datagram(data, SERVER_ADDR, now=now)
            moved = True
        now += 0.001
        if not moved:
            break
    return server


def drain(conn: QuicConnection) -> list[events.QuicEvent]:
    out = []
    while (ev := conn.next_event()) is not None:
        out.append(ev)
    return out


def terminated_by_decrypt_error(conn: QuicConnection) -> bool:
    """After its closing period, the side that checked CertificateVerify reports TLS alert 51."""
    conn.handle_timer(now=1000.0)
    ends = [e for e in drain(conn) if isinstance(e, events.ConnectionTerminated)]
    return bool(ends) and ends[0].error_code == 0x100 + 51  # CRYPTO_ERROR + decrypt_error


def completed(conn: QuicConnection) -> bool:
    return any(isinstance(e, events.HandshakeCompleted) for e in drain(conn))


def server_of(ident: Identity, cls: type[QuicConnection] = MutualTlsConnection,
              **config: Any) -> Callable[..., QuicConnection]:
    return partial(cls, configuration=make_configuration(ident, is_client=False, **config))


def test_certificate_carries_the_identity_key() -> None:
    ident = Identity.generate()
    cert, key = make_certificate(ident)
    pub = cert.public_key()
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    assert pub.public_bytes_raw() == ident.peer_id.key
    assert key.public_key().public_bytes_raw() == ident.peer_id.key


def test_configuration_settings() -> None:
    config = make_configuration(Identity.generate(), is_client=True)
    assert config.alpn_protocols == [ALPN] == ["remote-network/1"]
    assert config.verify_mode == ssl.CERT_NONE
    assert config.max_stream_data >= 16 * 1024 * 1024
    assert config.max_data >= 16 * 1024 * 1024
    assert config.session_ticket is None


def test_mutual_handshake_proves_both_ids() -> None:
    a, b = Identity.generate(), Identity.generate()
    client = MutualTlsConnection(configuration=make_configuration(a, is_client=True))
    server = run_handshake(client, server_of(b))
    assert completed(client) and completed(server)
    assert peer_id_from_connection(client) == b.peer_id
    assert peer_id_from_connection(server) == a.peer_id  # the server asked for it


def test_only_x25519_is_offered_and_used() -> None:
    """Pins ``tls._supported_groups``: one key share (no P-256/P-384/X448 key generated)."""
    a, b = Identity.generate(), Identity.generate()
    client = MutualTlsConnection(configuration=make_configuration(a, is_client=True))
    server = run_handshake(client, server_of(b))
    assert completed(client) and completed(server)
    for side in (client, server):
        assert side.tls._supported_groups == KEY_EXCHANGE_GROUPS == [Group.X25519]
        assert side.tls._x25519_private_key is not None
        assert side.tls._ec_private_keys == [] and side.tls._x448_private_key is None


def test_quic_v1_only_and_two_active_connection_ids() -> None:
    """Pins ``_local_active_connection_id_limit``: each side issues one spare CID, not 7,
    and only v1 Initial keys are set up."""
    a, b = Identity.generate(), Identity.generate()
    client = MutualTlsConnection(configuration=make_configuration(a, is_client=True))
    server = run_handshake(client, server_of(b))
    assert completed(client) and completed(server)
    for side, other in ((client, server), (server, client)):
        assert side.configuration.supported_versions == QUIC_VERSIONS == [1]
        assert list(side._cryptos_initial) == [1] and side._version == 1
        assert side._local_active_connection_id_limit == ACTIVE_CONNECTION_ID_LIMIT == 2
        assert other._remote_active_connection_id_limit == 2  # what the peer was told
        assert len(side._host_cids) == 2  # the handshake CID + one spare
        assert len(other._peer_cid_available) == 1


@pytest.mark.parametrize("plain_side", ["client", "server"])
def test_x25519_only_interoperates_with_aioquic_default_groups(plain_side: str) -> None:
    """A peer with aioquic's default groups, versions and CID limit (an older node) still
    completes a handshake in either role."""
    a, b = Identity.generate(), Identity.generate()
    old_defaults = QuicConfiguration(is_client=True).supported_versions
    assert len(old_defaults) > 1
    client_config = make_configuration(a, is_client=True)
    client_cls: type[QuicConnection] = MutualTlsConnection
    server_cls: type[QuicConnection] = MutualTlsConnection
    if plain_side == "client":
        client_config.supported_versions = old_defaults
        client_cls = QuicConnection
    else:
        server_cls = QuicConnection
    client = client_cls(configuration=client_config)
    server_config = make_configuration(b, is_client=False)
    if plain_side == "server":
        server_config.supported_versions = old_defaults
    server = run_handshake(client, partial(server_cls, configuration=server_config))
    assert completed(client) and completed(server)
    assert peer_id_from_connection(client) == b.peer_id
    assert server.tls._x25519_private_key is not None  # X25519 chosen either way
    exchange(client, server)  # spare CIDs within each side's announced limit: no error
    assert not any(isinstance(e, events.ConnectionTerminated)
                   for side in (client, server) for e in drain(side))


def test_plain_aioquic_server_would_not_ask_for_a_client_certificate() -> None:
    """Pins why MutualTlsConnection exists: without the private flag there is no client cert."""
    a, b = Identity.generate(), Identity.generate()
    client = MutualTlsConnection(configuration=make_configuration(a, is_client=True))
    server = run_handshake(client, server_of(b, QuicConnection))
    assert completed(server)
    with pytest.raises(RemoteProtocolError, match="no certificate"):
        peer_id_from_connection(server)


def test_client_without_certificate_is_detected() -> None:
    server_id = Identity.generate()
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    client = QuicConnection(configuration=config)
    server = run_handshake(client, server_of(server_id))
    assert completed(server)  # TLS lets it through (RFC 8446 4.4.2.4) ...
    with pytest.raises(RemoteProtocolError, match="no certificate"):
        peer_id_from_connection(server)  # ... so our check must refuse it


def test_certificate_for_a_key_not_held_fails_the_handshake() -> None:
    victim, thief, server_id = Identity.generate(), Identity.generate(), Identity.generate()
    victim_cert, _ = make_certificate(victim)
    _, thief_key = make_certificate(thief)
    client = MutualTlsConnection(configuration=make_configuration(
        thief, is_client=True, certificate=(victim_cert, thief_key)))
    server = run_handshake(client, server_of(server_id))
    assert not client._handshake_confirmed  # the server never accepted the thief
    assert not completed(server)
    assert terminated_by_decrypt_error(server)


def test_server_with_a_stolen_certificate_fails_too() -> None:
    victim, thief, client_id = Identity.generate(), Identity.generate(), Identity.generate()
    victim_cert, _ = make_certificate(victim)
    _, thief_key = make_certificate(thief)
    client = MutualTlsConnection(configuration=make_configuration(client_id, is_client=True))
    run_handshake(client, server_of(thief, certificate=(victim_cert, thief_key)))
    assert not completed(client)
    assert terminated_by_decrypt_error(client)


def test_non_ed25519_key_is_refused() -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ecdsa")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
    config.certificate, config.private_key = cert, key
    client = QuicConnection(configuration=config)
    server = run_handshake(client, server_of(Identity.generate()))
    assert completed(server)
    with pytest.raises(RemoteProtocolError, match="not Ed25519"):
        peer_id_from_connection(server)


def exchange(client: QuicConnection, server: QuicConnection, rounds: int = 50) -> None:
    now = 1.0
    for _ in range(rounds):
        for data, _addr in client.datagrams_to_send(now=now):
            server.receive_datagram(data, CLIENT_ADDR, now=now)
        for data, _addr in server.datagrams_to_send(now=now):
            client.receive_datagram(data, SERVER_ADDR, now=now)
        now += 0.001


def test_pinned_send_buffer_fields_used_for_pacing() -> None:
    """The session paces on ``sender._buffer_stop - sender._buffer_start``: pin their meaning."""
    a, b = Identity.generate(), Identity.generate()
    client = MutualTlsConnection(configuration=make_configuration(a, is_client=True))
    server = run_handshake(client, server_of(b))
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"x" * 100_000)
    sender = client._streams[sid].sender
    assert sender._buffer_stop - sender._buffer_start == 100_000  # written, unacknowledged
    exchange(client, server)
    assert sender._buffer_stop - sender._buffer_start == 0  # everything acknowledged


def test_aioquic_frame_epochs_are_memoized_and_unchanged() -> None:
    """tls.py memoizes aioquic's pure ``EPOCHS``: still present, cached, same results."""
    import aioquic.quic.connection as qc

    import rnn_tui.transport.tls  # noqa: F401  (applies the memoization)

    assert hasattr(qc.EPOCHS, "cache_info")
    original = qc.EPOCHS.__wrapped__
    for shortcut in ("IH01", "IH1", "01", "1", "0", "H1"):
        assert qc.EPOCHS(shortcut) == original(shortcut)
        assert qc.EPOCHS(shortcut) is qc.EPOCHS(shortcut)
