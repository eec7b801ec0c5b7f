"""Output transfers between two real QUIC transports on loopback (no Docker).

Covers the transfer driver end to end: a verified delivery, a refused route, a path
traversal in the destination name, and a connection cut halfway that resumes without
sending verified chunks again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from transport_helpers import running

from rnn_tui.errors import WorkflowError
from rnn_tui.identity import PeerId
from rnn_tui.transport import Transport
from rnn_tui.transport.session import PeerConnection
from rnn_tui.workflow.transfer_driver import Landing, TransferService
from rnn_tui.workflow.wire import XferOffer

pytestmark = [pytest.mark.integration]

CHUNK = 64 * 1024


def _services(a: Transport, b: Transport, root: Path, landed: dict[str, tuple[int, str]],
              *, refuse: str = "", name_override: str | None = None
              ) -> tuple[TransferService, TransferService]:
    async def connect_from(src: Transport, dst: Transport, peer: PeerId) -> PeerConnection:
        conn = src.connection_to(peer)
        if conn is not None and conn.is_open:
            return conn
        return await src.dial(dst.endpoint.local_addr, expected_peer_id=peer, timeout=5)

    async def accept(peer: PeerId, offer: XferOffer) -> Landing:
        if refuse:
            raise WorkflowError(refuse)
        name = name_override or offer.offer.name
        return Landing(root, name, 1 << 30,
                       on_done=lambda size, sha: landed.__setitem__(name, (size, sha)))

    async def no_accept(peer: PeerId, offer: XferOffer) -> Landing:
        raise WorkflowError("this side only sends")

    sender = TransferService(lambda p: connect_from(a, b, p), no_accept, chunk_size=CHUNK,
                             window=8, stall_timeout=10)
    receiver = TransferService(lambda p: connect_from(b, a, p), accept, chunk_size=CHUNK,
                               window=8, stall_timeout=10)
    sender.install(a.handlers)
    receiver.install(b.handlers)
    return sender, receiver


def _source(tmp: Path, size: int) -> tuple[Path, str]:
    data = os.urandom(size)
    path = tmp / "source.bin"
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def _send(sender: TransferService, b: Transport, path: Path, name: str,
                tid: str = "t1") -> object:
    return await sender.send_file(b.identity.peer_id, path, transfer_id=tid, name=name,
                                  run_id="run1", source_job="up", attempt=1, connection=0,
                                  target_job="down", target="STDIN")


async def test_delivery_is_verified_and_lands_under_its_name(tmp_path: Path) -> None:
    path, digest = _source(tmp_path, 20 * CHUNK + 123)
    landed: dict[str, tuple[int, str]] = {}
    async with running(2) as (a, b):
        sender, receiver = _services(a, b, tmp_path / "in", landed)
        outcome = await _send(sender, b, path, "data/input.bin")
        await sender.close()
        await receiver.close()
    assert outcome.ok, outcome.reason  # type: ignore[attr-defined]
    assert landed == {"data/input.bin": (path.stat().st_size, digest)}
    assert (tmp_path / "in" / "data" / "input.bin").read_bytes() == path.read_bytes()
    assert not (tmp_path / "in" / "data" / "input.bin.part").exists()


async def test_receiver_refusal_reaches_the_sender_with_its_reason(tmp_path: Path) -> None:
    path, _ = _source(tmp_path, 1000)
    async with running(2) as (a, b):
        sender, receiver = _services(a, b, tmp_path / "in", {},
                                     refuse="output not in the routing of job 'down'")
        outcome = await _send(sender, b, path, "x.bin")
        await sender.close()
        await receiver.close()
    assert not outcome.ok  # type: ignore[attr-defined]
    assert "output not in the routing" in outcome.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["../escape.bin", "/etc/passwd", "a/../../b"])
async def test_path_traversal_in_a_destination_name_is_refused(tmp_path: Path, name: str) -> None:
    path, _ = _source(tmp_path, 1000)
    async with running(2) as (a, b):
        sender, receiver = _services(a, b, tmp_path / "in", {})
        outcome = await _send(sender, b, path, name)
        await sender.close()
        await receiver.close()
    assert not outcome.ok  # type: ignore[attr-defined]
    assert "refused" in outcome.reason  # type: ignore[attr-defined]
    assert not (tmp_path / "escape.bin").exists()


async def test_symlink_escape_in_the_landing_directory_is_refused(tmp_path: Path) -> None:
    path, _ = _source(tmp_path, 1000)
    root = tmp_path / "in"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    async with running(2) as (a, b):
        sender, receiver = _services(a, b, root, {})
        outcome = await _send(sender, b, path, "link/file.bin")
        await sender.close()
        await receiver.close()
    assert not outcome.ok  # type: ignore[attr-defined]
    assert list((tmp_path / "outside").iterdir()) == []


async def test_cut_halfway_resumes_without_resending_verified_chunks(tmp_path: Path) -> None:
    total_chunks = 64
    path, digest = _source(tmp_path, total_chunks * CHUNK)
    landed: dict[str, tuple[int, str]] = {}
    async with running(2) as (a, b):
        sender, receiver = _services(a, b, tmp_path / "in", landed)
        task = asyncio.create_task(_send(sender, b, path, "big.bin"))
        while receiver.chunks_received < total_chunks // 2:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        conn = b.connection_to(a.identity.peer_id)
        assert conn is not None
        await conn.close(reason="test cuts the connection halfway")
        outcome = await asyncio.wait_for(task, 30)
        await sender.close()
        await receiver.close()
    assert outcome.ok, outcome.reason
    assert outcome.reconnects >= 1
    assert outcome.resent_below_verified == 0
    # only chunks in flight (at most one window) may travel twice
    assert total_chunks <= outcome.chunks_sent <= total_chunks + 8
    assert receiver.chunks_received < total_chunks + 8
    assert landed["big.bin"] == (total_chunks * CHUNK, digest)
