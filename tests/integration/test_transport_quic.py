"""Identity-bound QUIC on loopback: handshake, security checks, built-in messages, events."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration
from transport_helpers import LOOPBACK, Probe, eventually, running

from rnn_tui.errors import PeerIdMismatch, RequestTimeout
from rnn_tui.identity import Identity, PeerId
from rnn_tui.transport import (
    ConnectionClosed,
    PeerConnected,
    PeerDisconnected,
    Transport,
    TransportEvent,
)
from rnn_tui.transport.connection import IDENTITY_REJECTED
from rnn_tui.transport.framing import Flags, Frame, encode_frame
from rnn_tui.transport.messages import PeerRecord, Ping, ServiceCatalog
from rnn_tui.transport.tls import ALPN, make_certificate, make_configuration

pytestmark = pytest.mark.integration


async def test_dial_proves_both_ids_and_fires_events() -> None:
    async with running(2) as (a, b):
        events: list[TransportEvent] = []
        b.add_listener(events.append)
        conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
        assert conn.peer_id == b.identity.peer_id
        await eventually(lambda: len(b.connections()) == 1)
        inbound = b.connections()[0]
        assert inbound.peer_id == a.identity.peer_id and not inbound.outbound
        assert isinstance(events[0], PeerConnected) and events[0].peer_id == a.identity.peer_id
        assert b.connection_to(a.identity.peer_id) is inbound
        await conn.close()
        await eventually(lambda: not b.connections())
        assert isinstance(events[-1], PeerDisconnected)


async def test_dial_without_expected_id_learns_it() -> None:
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr)
        assert conn.peer_id == b.identity.peer_id


async def test_dial_expecting_another_id_fails() -> None:
    async with running(2) as (a, b):
        someone_else = Identity.generate().peer_id
        with pytest.raises(PeerIdMismatch, match="expected"):
            await a.dial(b.endpoint.local_addr, expected_peer_id=someone_else)
        assert a.connections() == []
        await asyncio.sleep(0.1)
        assert b.connections() == []  # the server never saw a verified connection either


async def test_client_without_certificate_is_refused() -> None:
    async with running(1) as (server,):
        calls: list[object] = []

        async def record(conn, msg):  # type: ignore[no-untyped-def]
            calls.append(msg)
            return msg

        server.handlers.on_request(Probe, record)
        host, port = server.endpoint.local_addr
        config = QuicConfiguration(is_client=True, alpn_protocols=[ALPN], verify_mode=ssl.CERT_NONE)
        async with asyncio.timeout(10), connect(host, port, configuration=config) as client:
            # TLS lets a certificate-less client finish; our check then closes the connection
            reader, writer = await client.create_stream()
            writer.write(encode_frame(Frame(Probe.TYPE, Flags.NONE, 1, b"hello")))
            await client.wait_closed()
            writer.close()
            close = client._quic._close_event
            assert close is not None and close.error_code == IDENTITY_REJECTED
        assert server.connections() == [] and calls == []  # no application data was handled


async def test_certificate_for_a_key_not_held_gets_nothing_through() -> None:
    """A thief's dial returns (it verified the server), but nothing it sends is handled.

    The dialler does not wait for HANDSHAKE_DONE (docs/TRANSPORT.md, "Identity"), so the
    thief's dial returns and its request goes out right behind its forged CertificateVerify.  The server's TLS
    rejects the signature, never installs the 1-RTT key and closes the connection.
    """
    async with running(2) as (a, b):
        calls: list[object] = []

        async def record(conn, msg):  # type: ignore[no-untyped-def]
            calls.append(msg)
            return msg

        b.handlers.on_request(Probe, record)
        victim = Identity.generate()
        victim_cert, _ = make_certificate(victim)
        _, own_key = make_certificate(a.identity)
        # a pretends to be the victim: the certificate names the victim's key, signed by a's
        a._client_config = make_configuration(a.identity, is_client=True,
                                              certificate=(victim_cert, own_key))
        # the dial returns before the refusal can arrive: the dialler has resumed by the
        # time the server's answer to its Finished is read
        conn = await a.dial(b.endpoint.local_addr, timeout=3)
        with pytest.raises(ConnectionClosed):
            await conn.request(Probe(b"let me in"), timeout=3)
        assert conn.closed.is_set()
        await asyncio.sleep(0.1)
        assert b.connections() == [] and calls == []


async def test_request_sent_right_after_dial_is_handled_after_the_server_verified() -> None:
    """The first request may share a datagram with the client's Finished: it still waits
    for the server's own check, and the handler sees the proven client id."""
    async with running(2) as (a, b):
        seen: list[tuple[object, bool]] = []

        async def record(conn, msg):  # type: ignore[no-untyped-def]
            seen.append((conn.peer_id, conn.is_open))
            return msg

        b.handlers.on_request(Probe, record)
        for _ in range(5):
            conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
            assert await conn.request(Probe(b"first"), timeout=5) == Probe(b"first")
            await conn.close()
        assert seen == [(a.identity.peer_id, True)] * 5


async def test_server_refusing_the_dialler_closes_the_returned_connection() -> None:
    """A server that refuses our certificate after we verified it (here: one expecting
    another client id) ends the dialled connection; requests fail, nothing is handled."""
    async with running(2) as (a, b):
        calls: list[object] = []

        async def record(conn, msg):  # type: ignore[no-untyped-def]
            calls.append(msg)
            return msg

        b.handlers.on_request(Probe, record)
        original = b._make_connection

        def expect_someone_else(*args, **kwargs):  # type: ignore[no-untyped-def]
            conn = original(*args, **kwargs)
            if not kwargs["outbound"]:
                conn.expected_peer_id = Identity.generate().peer_id
            return conn

        b._make_connection = expect_someone_else  # type: ignore[method-assign]
        events: list[TransportEvent] = []
        a.add_listener(events.append)
        conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id,
                            timeout=3)
        with pytest.raises(ConnectionClosed):
            await conn.request(Probe(b"hello"), timeout=3)
        assert conn.closed.is_set() and "identity rejected" in conn.close_reason
        assert isinstance(events[-1], PeerDisconnected)
        await asyncio.sleep(0.1)
        assert b.connections() == [] and calls == []


async def test_builtin_messages() -> None:
    async with running(2) as (a, b):
        b.capabilities = ("relay",)
        conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
        rtt = await a.ping(conn)
        assert 0 < rtt < 5 and conn.rtt == rtt
        ident = await a.identify(conn)
        assert ident.capabilities == ("relay",)
        assert ident.listen_addrs == (f"{LOOPBACK}:{b.endpoint.local_addr[1]}",)
        assert ident.observed_addr == f"{LOOPBACK}:{a.endpoint.local_addr[1]}"
        catalog = await a.fetch_service_catalog(conn)
        assert catalog == ServiceCatalog()
        await eventually(lambda: bool(b.connections()))
        assert b.connections()[0].peer_identify is not None  # b kept what a told it


async def test_peer_exchange_drops_forged_records() -> None:
    async with running(2) as (a, b):
        honest = PeerRecord.create(Identity.generate(), ["127.0.0.9:9"], 10)
        forged = PeerRecord(Identity.generate().peer_id, ("6.6.6.6:6",), 10, honest.signature)
        b.peer_records = lambda: [honest, forged]
        received: list[tuple[PeerRecord, ...]] = []
        b.on_peer_records = lambda conn, records: received.append(records)
        forged_by_a = PeerRecord(b.identity.peer_id, ("6.6.6.6:6",), 11, bytes(64))
        a.peer_records = lambda: [*a._own_record(), forged_by_a]
        conn = await a.dial(b.endpoint.local_addr)
        records = await a.exchange_peers(conn)
        assert records == (honest,)
        assert [r.peer_id for r in received[0]] == [a.identity.peer_id]


async def test_request_timeout_and_connection_still_usable() -> None:
    async with running(2) as (a, b):
        async def slow(conn, msg):  # type: ignore[no-untyped-def]
            await asyncio.sleep(10)

        b.handlers.on_request(Probe, slow)
        conn = await a.dial(b.endpoint.local_addr)
        with pytest.raises(RequestTimeout, match="no reply"):
            await conn.request(Probe(), timeout=0.3)
        assert await conn.request(Ping(b"x"), timeout=5) is not None


async def test_dial_to_a_silent_port_times_out() -> None:
    async with running(1) as (a,):
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind((LOOPBACK, 0))
            with pytest.raises(RequestTimeout, match="handshake"):
                await a.dial(silent.getsockname(), timeout=0.5)
        assert a.connections() == []


async def test_cancelled_dial_leaves_no_pending_connection() -> None:
    async with running(1) as (a,):
        silent = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=(LOOPBACK, 0))
        try:
            port = silent[0].get_extra_info("sockname")[1]
            dial = asyncio.create_task(a.dial((LOOPBACK, port), timeout=5))
            await eventually(lambda: len(a._pending) == 1)
            dial.cancel()
            with pytest.raises(asyncio.CancelledError):
                await dial
            assert a._pending == set()
            await eventually(lambda: not a.endpoint._sinks)  # its CIDs are gone too
        finally:
            silent[0].close()


async def test_keepalive_holds_an_idle_connection_and_idle_timeout_ends_a_dead_one() -> None:
    from rnn_tui.transport import Transport, TransportSettings

    def node(keepalive: float | None) -> Transport:
        return Transport(Identity.generate(), settings=TransportSettings(
            keepalive_interval=keepalive, idle_timeout=1.0, handshake_timeout=5.0))

    a, b, c, d = node(0.2), node(0.2), node(None), node(None)
    nodes = (a, b, c, d)
    for n in nodes:
        await n.start(LOOPBACK, 0)
    try:
        kept = await a.dial(b.endpoint.local_addr)
        events: list[TransportEvent] = []
        c.add_listener(events.append)
        lapsed = await c.dial(d.endpoint.local_addr)  # neither side sends keepalives
        await asyncio.sleep(2.5)  # > 2 idle timeouts without any application traffic
        assert kept.is_open and await a.ping(kept) > 0
        assert not lapsed.is_open
        assert any(isinstance(e, PeerDisconnected) for e in events)
    finally:
        for n in nodes:
            await n.close()


def _has_ipv6_loopback() -> bool:
    import socket
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this host has no IPv6 loopback")
async def test_dual_stack_socket_serves_ipv4_and_ipv6_loopback() -> None:
    from rnn_tui.transport import Transport

    server = Transport(Identity.generate())
    v4 = Transport(Identity.generate())
    v6 = Transport(Identity.generate())
    try:
        _, port = await server.start("::", 0, dual_stack=True)  # one socket, both families
        await v4.start(LOOPBACK, 0)
        await v6.start("::1", 0)
        c4 = await v4.dial((LOOPBACK, port), expected_peer_id=server.identity.peer_id)
        c6 = await v6.dial(("::1", port), expected_peer_id=server.identity.peer_id)
        assert await v4.ping(c4) > 0 and await v6.ping(c6) > 0
        await eventually(lambda: len(server.connections()) == 2)
        seen = sorted(c.remote_addr[0] for c in server.connections())
        assert seen == ["127.0.0.1", "::1"]  # IPv4 peers appear without the ::ffff: prefix
        ident = await v4.identify(c4)
        assert ident.observed_addr == f"127.0.0.1:{v4.endpoint.local_addr[1]}"
    finally:
        for n in (server, v4, v6):
            await n.close()


async def test_finished_exchanges_leave_no_stream_state() -> None:
    async with running(2) as (a, b):
        got: list[bytes] = []

        async def one_way(conn, msg):  # type: ignore[no-untyped-def]
            got.append(msg.data)

        async def chunks(conn, msg):  # type: ignore[no-untyped-def]
            for i in range(5):
                yield Probe(b"%d" % i)

        b.handlers.on_message(Probe, one_way)
        b.handlers.on_stream(Probe, chunks)
        conn = await a.dial(b.endpoint.local_addr)
        for i in range(50):
            await conn.request(Ping(b"%d" % i), timeout=5)
        for _ in range(5):
            async with conn.stream(Probe()) as replies:
                assert len([r async for r in replies]) == 5
        for i in range(10):
            conn.send(Probe(b"%d" % i))
        await eventually(lambda: len(got) == 10)
        server = b.connections()[0]
        # session state is gone on both sides, and so are aioquic's stream objects
        await eventually(lambda: not conn._streams and not server._streams)
        await eventually(lambda: not conn.quic._streams and not server.quic._streams)


def _send_on_verified(transport: Transport, frame: bytes) -> None:
    """Make ``transport``'s next dial write ``frame`` on a new stream the moment its side of
    the handshake verifies, before the deferred transmit: the request then leaves in the
    same datagram as the client's Finished (the earliest a dialler can send anything)."""
    original = transport._make_connection

    def make(*args, **kwargs):  # type: ignore[no-untyped-def]
        conn = original(*args, **kwargs)

        def send(fut: asyncio.Future[PeerId]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                sid = conn.quic.get_next_available_stream_id()
                conn.quic.send_stream_data(sid, frame, end_stream=True)

        conn.verified.add_done_callback(send)
        return conn

    transport._make_connection = make  # type: ignore[method-assign]


@pytest.mark.parametrize("server_accepts", [True, False])
async def test_data_coalesced_with_the_client_finished_waits_for_the_server_check(
        server_accepts: bool) -> None:
    """The server's gate, proven on the earliest possible application data: accepted, it
    is handled with the proven client id; refused, it is never handled."""
    async with running(2) as (a, b):
        seen: list[object] = []

        async def record(conn, msg):  # type: ignore[no-untyped-def]
            seen.append(conn.peer_id)
            return msg

        b.handlers.on_request(Probe, record)
        if not server_accepts:
            original = b._make_connection

            def expect_someone_else(*args, **kwargs):  # type: ignore[no-untyped-def]
                conn = original(*args, **kwargs)
                conn.expected_peer_id = Identity.generate().peer_id
                return conn

            b._make_connection = expect_someone_else  # type: ignore[method-assign]
        _send_on_verified(a, encode_frame(Frame(Probe.TYPE, Flags.NONE, 7, b"early")))
        conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
        if server_accepts:
            await eventually(lambda: seen == [a.identity.peer_id])
        else:
            await eventually(lambda: conn.closed.is_set())
            await asyncio.sleep(0.1)
            assert seen == [] and b.connections() == []


async def test_dial_returns_before_the_finished_leaves_so_a_first_request_shares_it() -> None:
    """The dialler resumes in the iteration after the server was verified, while the link's
    deferred transmit (our Finished) is still pending: a request made at once is written
    before that transmit runs, so both leave in one datagram."""
    async with running(2) as (a, b):
        conn = await a.dial(b.endpoint.local_addr, expected_peer_id=b.identity.peer_id)
        pending = conn._transmit_handle
        assert pending is not None  # the Finished is not out yet
        written_while_pending: list[bool] = []
        send_stream_data = conn.quic.send_stream_data

        def record(*args, **kwargs):  # type: ignore[no-untyped-def]
            written_while_pending.append(conn._transmit_handle is pending)
            return send_stream_data(*args, **kwargs)

        conn.quic.send_stream_data = record  # type: ignore[method-assign]
        assert await conn.request(Ping(b"first"), timeout=5) is not None
        assert written_while_pending[:1] == [True]
