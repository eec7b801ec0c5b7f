"""Chunked transfer: integrity, resume without resending verified chunks, bounded memory,
and destination names confined to the job directory."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.workflow.transfer import (
    Chunk,
    End,
    Offer,
    PathEscape,
    TransferCompleted,
    TransferFailed,
    TransferMessage,
    TransferReceiver,
    TransferSender,
    TransferState,
    WriteChunk,
    confine_path,
    hash_file,
    open_destination,
    resume_state,
)


class Link:
    """Moves messages between a sender and a receiver in memory, like a QUIC stream would;
    the receiver side writes chunks into a bytearray or a real file."""

    def __init__(self, sender: TransferSender, receiver: TransferReceiver,
                 sink: bytearray | int) -> None:
        self.sender, self.receiver, self.sink = sender, receiver, sink
        self.chunks_sent: list[int] = []
        self.max_held = 0
        self.tamper: dict[int, bytes] = {}

    def write(self, offset: int, data: bytes) -> None:
        if isinstance(self.sink, bytearray):
            if len(self.sink) < offset:
                self.sink.extend(b"\0" * (offset - len(self.sink)))
            self.sink[offset:offset + len(data)] = data
        else:
            os.pwrite(self.sink, data, offset)

    def step(self) -> bool:
        moved = False
        for msg in self.sender.messages_to_send():
            moved = True
            if isinstance(msg, Chunk):
                self.chunks_sent.append(msg.index)
                if msg.index in self.tamper:
                    msg = replace(msg, data=self.tamper.pop(msg.index))
            self.receiver.receive(msg)
            self.drain_receiver_events()
        for msg in self.receiver.messages_to_send():
            moved = True
            self.sender.receive(msg)
        self.max_held = max(self.max_held, self.sender.held_bytes)
        return moved

    def drain_receiver_events(self) -> list[object]:
        events = []
        while (event := self.receiver.next_event()) is not None:
            if isinstance(event, WriteChunk):
                self.write(event.offset, event.data)
            events.append(event)
        return events

    def feed_source(self, source: bytes, cut_after_chunks: int | None = None) -> None:
        """Run until done; with ``cut_after_chunks``, break the link once that many chunks
        crossed (returns early so the test can reconnect)."""
        while not (self.sender.finished and self.receiver.finished):
            want = self.sender.wants_data()
            if want:
                offset = self.sender.read_offset
                data = source[offset:offset + want]
                if data:
                    self.sender.push(data)
                else:
                    self.sender.finish()
            elif not self.sender.finished and self.sender.read_offset >= len(source):
                self.sender.finish()
            moved = self.step()
            if cut_after_chunks is not None and len(self.chunks_sent) >= cut_after_chunks:
                self.sender.connection_lost()
                self.receiver.connection_lost()
                return
            if not moved and not want:
                break


def sender_events(sender: TransferSender) -> list[object]:
    out = []
    while (event := sender.next_event()) is not None:
        out.append(event)
    return out


def test_whole_file_arrives_and_both_sides_agree() -> None:
    data = random.Random(1).randbytes(100_000)
    sha = hashlib.sha256(data).digest()
    sender = TransferSender("t1", "out.bin", chunk_size=4096, window=4, size=len(data), sha256=sha)
    receiver = TransferReceiver("t1", max_size=1 << 20, expected_name="out.bin",
                                expected_sha256=sha)
    sink = bytearray()
    link = Link(sender, receiver, sink)
    link.feed_source(data)
    assert bytes(sink) == data
    assert receiver.state is TransferState.DONE and sender.state is TransferState.DONE
    assert sender_events(sender) == [TransferCompleted(len(data), sha)]
    assert link.chunks_sent == list(range(25))  # 100000 / 4096 → 25 chunks, each once
    assert link.max_held <= 4 * 4096


def test_stream_mode_computes_the_hash_as_it_goes() -> None:
    data = b"line\n" * 5000
    sender = TransferSender("s", "stdout", chunk_size=1000, window=2)
    receiver = TransferReceiver("s", max_size=1 << 20)
    sink = bytearray()
    Link(sender, receiver, sink).feed_source(data)
    assert bytes(sink) == data and sender.state is TransferState.DONE
    assert link_max_is_bounded(sender)


def link_max_is_bounded(sender: TransferSender) -> bool:
    return sender.held_bytes <= sender.window * sender.chunk_size


def test_empty_object() -> None:
    sender = TransferSender("e", "empty", chunk_size=10, size=0, sha256=hashlib.sha256().digest())
    receiver = TransferReceiver("e", max_size=10)
    sink = bytearray()
    Link(sender, receiver, sink).feed_source(b"")
    assert receiver.state is TransferState.DONE and sink == b""


@pytest.mark.parametrize("mode", ["file", "stream"])
def test_cut_halfway_resumes_without_resending_verified_chunks(mode: str) -> None:
    data = random.Random(2).randbytes(64 * 1024)
    sha = hashlib.sha256(data).digest()
    kwargs = {"size": len(data), "sha256": sha} if mode == "file" else {}
    sender = TransferSender("t2", "x", chunk_size=1024, window=8, **kwargs)  # type: ignore[arg-type]
    receiver = TransferReceiver("t2", max_size=1 << 20)
    sink = bytearray()
    link = Link(sender, receiver, sink)
    link.feed_source(data, cut_after_chunks=32)
    verified = receiver.verified_chunks
    assert 0 < verified <= 32 and sender.state is TransferState.DISCONNECTED
    sent_before = len(link.chunks_sent)
    sender.reconnected()
    link.feed_source(data)
    resent = link.chunks_sent[sent_before:]
    assert resent[0] == verified, "the first chunk after the cut is the first unverified one"
    assert not set(resent) & set(range(verified)), "a verified chunk was sent again"
    assert bytes(sink) == data and receiver.state is TransferState.DONE


def test_receiver_restart_resumes_from_its_partial_file(tmp_path: Path) -> None:
    data = random.Random(3).randbytes(50_000)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    size, sha = hash_file(src)
    jobdir = tmp_path / "job"
    jobdir.mkdir()
    sender = TransferSender("t3", "in.bin", chunk_size=4096, window=4, size=size, sha256=sha)
    receiver = TransferReceiver("t3", max_size=1 << 20)
    fd = open_destination(jobdir, "in.bin")
    link = Link(sender, receiver, fd)
    link.feed_source(data, cut_after_chunks=7)
    os.close(fd)
    # a torn write: half a chunk more on disk than was verified
    with open(jobdir / "in.bin", "ab") as handle:
        handle.write(b"garbage" * 300)
    chunks, hasher = resume_state(jobdir / "in.bin", 4096)
    assert chunks == receiver.verified_chunks
    # both processes restart: a fresh sender (file mode) and a receiver resuming from disk
    sender2 = TransferSender("t3", "in.bin", chunk_size=4096, window=4, size=size, sha256=sha)
    receiver2 = TransferReceiver("t3", max_size=1 << 20, resume=(chunks, hasher))
    fd = open_destination(jobdir, "in.bin")
    link2 = Link(sender2, receiver2, fd)
    link2.feed_source(data)
    os.close(fd)
    assert link2.chunks_sent[0] == chunks and min(link2.chunks_sent) == chunks
    assert (jobdir / "in.bin").read_bytes() == data
    assert receiver2.state is TransferState.DONE


def test_corrupted_chunk_is_refused_naming_the_chunk() -> None:
    data = bytes(range(256)) * 40
    sender = TransferSender("t4", "x", chunk_size=1024, window=4)
    receiver = TransferReceiver("t4", max_size=1 << 20)
    link = Link(sender, receiver, bytearray())
    link.tamper[3] = b"\x00" * 1024
    link.feed_source(data)
    assert receiver.state is TransferState.FAILED and receiver.failure == "chunk 3 hash mismatch"
    assert sender.state is TransferState.FAILED
    assert sender.failure == "peer aborted: chunk 3 hash mismatch"
    assert TransferFailed("peer aborted: chunk 3 hash mismatch") in sender_events(sender)


def test_forged_chunk_with_matching_chunk_hash_fails_the_object_hash() -> None:
    data = b"a" * 3000
    sha = hashlib.sha256(data).digest()
    receiver = TransferReceiver("t5", max_size=10_000, expected_sha256=sha)
    receiver.receive(Offer("t5", "x", 1000, 3000))
    evil = b"b" * 1000
    for i, piece in enumerate((data[:1000], evil, data[2000:])):
        receiver.receive(Chunk("t5", i, hashlib.sha256(piece).digest(), piece))
    receiver.receive(End("t5", 3, 3000, hashlib.sha256(data[:1000] + evil + data[2000:]).digest()))
    assert receiver.failure == "object differs from the hash announced for it"
    receiver2 = TransferReceiver("t6", max_size=10_000)
    receiver2.receive(Offer("t6", "x", 1000, 3000))
    receiver2.receive(Chunk("t6", 0, hashlib.sha256(evil).digest(), evil))
    receiver2.receive(End("t6", 1, 1000, sha))
    assert receiver2.failure == "whole-object hash mismatch"


@pytest.mark.parametrize(("name", "needle"), [
    ("../escape.txt", "contains '..'"),
    ("/etc/passwd", "absolute"),
    ("a/../../b", "contains '..'"),
    ("", "non-empty"),
])
def test_offer_with_bad_name_is_refused(name: str, needle: str) -> None:
    receiver = TransferReceiver("t7", max_size=100)
    receiver.receive(Offer("t7", name, 10))
    assert receiver.state is TransferState.FAILED and needle in receiver.failure


def test_size_limits_and_protocol_abuse() -> None:
    r = TransferReceiver("t8", max_size=100)
    r.receive(Offer("t8", "x", 10, size=1000))
    assert "exceeds the limit" in r.failure
    r = TransferReceiver("t9", max_size=15)
    r.receive(Offer("t9", "x", 10))
    for i in range(2):
        r.receive(Chunk("t9", i, hashlib.sha256(b"z" * 10).digest(), b"z" * 10))
    assert "exceeds the limit of 15 bytes" in r.failure
    r = TransferReceiver("ta", max_size=100)
    r.receive(Offer("ta", "x", 10))
    r.receive(Chunk("ta", 2, hashlib.sha256(b"q").digest(), b"q"))
    assert r.failure == "chunk 2 arrived, expected 0"
    r = TransferReceiver("tb", max_size=100)
    r.receive(Offer("zz", "x", 10))
    assert "on transfer 'tb'" in r.failure
    s = TransferSender("tc", "x", chunk_size=10)
    with pytest.raises(Exception, match="beyond wants_data"):
        s.push(b"x" * 1000)


def _messages(machine: TransferSender | TransferReceiver) -> list[TransferMessage]:
    return machine.messages_to_send()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 20_000), chunk=st.integers(1, 3000), window=st.integers(1, 6),
       file_mode=st.booleans(), cuts=st.lists(st.integers(1, 40), max_size=3))
def test_any_cut_pattern_delivers_exact_bytes(size: int, chunk: int, window: int,
                                              file_mode: bool, cuts: list[int]) -> None:
    data = random.Random(size).randbytes(size)
    sha = hashlib.sha256(data).digest()
    kwargs = {"size": size, "sha256": sha} if file_mode else {}
    sender = TransferSender("h", "f", chunk_size=chunk, window=window, **kwargs)  # type: ignore[arg-type]
    receiver = TransferReceiver("h", max_size=size + 1)
    sink = bytearray()
    link = Link(sender, receiver, sink)
    segments: list[tuple[int, int]] = []  # (position in chunks_sent, verified at reconnect)
    for cut in cuts:
        link.feed_source(data, cut_after_chunks=len(link.chunks_sent) + cut)
        if sender.finished:
            break
        sender.reconnected()
        segments.append((len(link.chunks_sent), receiver.verified_chunks))
    link.feed_source(data)
    assert receiver.state is TransferState.DONE, (receiver.failure, sender.failure)
    ends = [start for start, _ in segments[1:]] + [len(link.chunks_sent)] * bool(segments)
    for (start, verified), end in zip(segments, ends, strict=True):
        assert all(i >= verified for i in link.chunks_sent[start:end]), "verified chunk resent"
    assert bytes(sink) == data
    assert link.max_held <= window * chunk


def test_confine_path_refuses_escapes(tmp_path: Path) -> None:
    root = tmp_path / "job"
    (root / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert confine_path(root, "sub/ok.csv") == (root / "sub" / "ok.csv").resolve()
    assert confine_path(root, "./new/deeper.txt").name == "deeper.txt"
    for bad in ("../x", "/etc/passwd", "sub/../../x", ""):
        with pytest.raises(PathEscape):
            confine_path(root, bad)
    (root / "link").symlink_to(outside)
    with pytest.raises(PathEscape, match="escapes"):
        confine_path(root, "link/stolen.txt")
    (root / "file-link").symlink_to(outside / "target.txt")
    with pytest.raises(PathEscape, match="symbolic link"):
        confine_path(root, "file-link")
    (root / "inner").symlink_to(root / "sub")
    assert confine_path(root, "inner/fine.txt").parent == (root / "sub").resolve()
    fd = open_destination(root, "made/here.bin")
    os.close(fd)
    assert (root / "made" / "here.bin").exists()


def test_receiver_that_lost_its_partial_file_gets_everything_again() -> None:
    data = random.Random(4).randbytes(40_000)
    sha = hashlib.sha256(data).digest()
    sender = TransferSender("t11", "x", chunk_size=1000, window=4, size=len(data), sha256=sha)
    first = TransferReceiver("t11", max_size=1 << 20)
    link = Link(sender, first, bytearray())
    link.feed_source(data, cut_after_chunks=20)
    assert sender.acknowledged_chunks >= 2
    fresh = TransferReceiver("t11", max_size=1 << 20)  # new disk: nothing verified
    sink = bytearray()
    sender.reconnected()
    link2 = Link(sender, fresh, sink)
    link2.feed_source(data)
    assert link2.chunks_sent[0] == 0 and bytes(sink) == data
    assert fresh.state is TransferState.DONE and sender.state is TransferState.DONE


def test_resume_reverifies_chunks_against_recorded_hashes(tmp_path: Path) -> None:
    """After a power loss an acknowledged chunk may be zeros on disk: it must not count."""
    chunk = 4096
    data = os.urandom(chunk * 6)
    part, sums = tmp_path / "in.bin.part", tmp_path / "in.bin.part.sums"
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    part.write_bytes(data[:chunk * 2] + bytes(chunk) + data[chunk * 3:] + b"torn")
    sums.write_bytes(b"".join(hashlib.sha256(p).digest() for p in pieces[:5]))
    chunks, hasher = resume_state(part, chunk, sums)
    assert chunks == 2  # chunk 2 lost its bytes: it and everything after come again
    assert hasher.digest() == hashlib.sha256(data[:chunk * 2]).digest()
    assert part.stat().st_size == chunk * 2 and sums.stat().st_size == 64
    # hashes recorded for fewer chunks than the file holds: only those count
    part.write_bytes(data)
    sums.write_bytes(b"".join(hashlib.sha256(p).digest() for p in pieces[:3]))
    assert resume_state(part, chunk, sums)[0] == 3
    # no recorded hashes at all: nothing is trusted
    sums.unlink()
    part.write_bytes(data)
    assert resume_state(part, chunk, sums)[0] == 0 and part.stat().st_size == 0


def test_receiver_takes_the_drivers_hashes_and_still_checks_them() -> None:
    data = os.urandom(3000)
    sender = TransferSender("d", "x", chunk_size=1000, size=len(data),
                            sha256=hashlib.sha256(data).digest())
    receiver = TransferReceiver("d", max_size=1 << 20, driver_hashes=True)
    receiver.receive(sender.messages_to_send()[0])
    sender.receive(receiver.messages_to_send()[0])
    digests = [hashlib.sha256(data[i:i + 1000]).digest() for i in range(0, 3000, 1000)]
    sender.push(data, digests)
    sender.finish()
    whole = hashlib.sha256()
    for message in sender.messages_to_send():
        if isinstance(message, Chunk):
            receiver.receive(message, hashlib.sha256(message.data).digest())
            whole.update(message.data)
        else:
            receiver.receive(message, whole.digest())
    assert receiver.state is TransferState.DONE
    writes = []
    while (event := receiver.next_event()) is not None:
        if isinstance(event, WriteChunk):
            writes.append(event)
    assert [w.sha256 for w in writes] == digests
    # a wrong digest from the driver is a mismatch like any other
    bad = TransferReceiver("d", max_size=1 << 20, driver_hashes=True)
    bad.receive(Offer("d", "x", 1000, 3000))
    bad.receive(Chunk("d", 0, digests[0], data[:1000]), b"\0" * 32)
    assert bad.state is TransferState.FAILED and "hash mismatch" in bad.failure
    # End without the whole-object digest is refused, not trusted
    nodigest = TransferReceiver("d", max_size=1 << 20, driver_hashes=True)
    nodigest.receive(Offer("d", "x", 1000, 0))
    nodigest.receive(End("d", 0, 0, hashlib.sha256().digest()))
    assert nodigest.state is TransferState.FAILED


def test_live_log_budget_allows_a_burst_then_a_rate() -> None:
    from rnn_tui.workflow.live_logs import LiveBudget

    budget = LiveBudget(burst=100, per_s=10.0, tokens=100)
    assert budget.take(30, now=0.0) == 30
    assert budget.take(500, now=0.0) == 70       # the rest of the burst, no more
    assert budget.take(5, now=0.05) == 0         # half a token has come back
    assert budget.take(9, now=0.55) == 5         # 0.5 s more at 10/s: 5.5 tokens, whole ones go
    assert budget.take(9, now=0.55) == 0         # the half token stays for later
    assert budget.take(1000, now=1000.0) == 100  # refills to the burst, never beyond
