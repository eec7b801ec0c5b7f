"""Socket-free tests of the workflow wire codec, receipts and the orchestrator's helpers."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.identity import Identity
from rnn_tui.transport.messages import REGISTRY, bencode
from rnn_tui.workflow import messages as wm
from rnn_tui.workflow import transfer as tc
from rnn_tui.workflow.model import Limits, MountDirection
from rnn_tui.workflow.orchestrator import result_name, spread_candidates
from rnn_tui.workflow.receipts import Digest, Receipt, open_receipt, sign_receipt
from rnn_tui.workflow.scheduler import Candidate
from rnn_tui.workflow.wire import (
    WfCommand,
    WfLog,
    WfReceipt,
    WfReply,
    WfReport,
    XferChunk,
    XferControl,
    XferOffer,
    XferPull,
)
from rnn_tui.workflow.yaml_io import load_workflow

PEER = Identity(b"\x01" * 32).peer_id
OTHER = Identity(b"\x02" * 32).peer_id

COMMANDS = [
    wm.RequestJob(PEER, "r", "j", 1, "svc", env=(("A", "b"),), args=("sh", "-c", "x"),
                  mounts=(("/d", MountDirection.INPUT), ("/o", MountDirection.OUTPUT)),
                  limits=Limits(500, None, 3), timeout_s=2.5),
    wm.RequestJob(PEER, "r", "j", 2, "svc"),
    wm.StartJob(PEER, "r", "j", 1, (wm.InputRoute(0, "up", "STDOUT", OTHER, "STDIN", None),),
                (wm.OutputRoute(1, "MOUNT:/o/x.csv", PEER, None, None, "x.csv"),
                 wm.OutputRoute(2, "STDOUT", OTHER, "down", "MOUNT:/in", "a.txt")), delivery=0),
    wm.StartJob(PEER, "r", "j", 2, (wm.InputRoute(0, "up", "STDOUT", OTHER, "STDIN", None,
                                                  stream=True),),
                (wm.OutputRoute(1, "STDERR", OTHER, "down", "STDIN", None, stream=True),)),
    wm.DeliverOutputs(PEER, "r", "j", 3, (), 4),
    wm.CancelJob(PEER, "r", "j", 1, "because"),
    wm.ReleaseJob(PEER, "r", "j", 1),
]
REPORTS = [
    wm.JobAccepted("r", "j", 1),
    wm.JobRefused("r", "j", 1, "no capacity"),
    wm.JobStatusReported("r", "j", 1, wm.ExecState.RUNNING, "detail"),
    wm.JobExited("r", "j", 1, 137, "killed"),
    wm.OutputsDelivered("r", "j", 1, 0, (wm.OutputDigest("STDOUT", 3, "ab"),), ((1, "gone"),)),
    wm.JobLost("r", "j", 1, "the executor restarted; container lost"),
    wm.Heartbeat("r", "j", 1),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_every_command_round_trips(command: wm.Command) -> None:
    msg = WfCommand(command)
    assert REGISTRY.decode(msg.TYPE, msg.encode()) == msg


@pytest.mark.parametrize("report", REPORTS, ids=lambda r: type(r).__name__)
def test_every_report_round_trips_as_report_and_reply(report: wm.Report) -> None:
    assert WfReport.decode(WfReport(report).encode()) == WfReport(report)
    assert WfReply.decode(WfReply(report).encode()) == WfReply(report)
    assert WfReply.decode(WfReply().encode()) == WfReply()


@pytest.mark.parametrize("message", [
    tc.ResumeFrom("t", 3), tc.Ack("t", 9), tc.End("t", 2, 100, b"s" * 32),
    tc.Completed("t", b"c" * 32), tc.Aborted("t", "why")])
def test_transfer_control_messages_round_trip(message: tc.TransferMessage) -> None:
    assert XferControl.decode(XferControl(message).encode()) == XferControl(message)


def test_offer_pull_log_receipt_round_trip() -> None:
    offer = XferOffer("r", "up", 1, 2, None, None, tc.Offer("t", "n.csv", 1024, 5000, 8),
                      b"x" * 32)
    assert XferOffer.decode(offer.encode()) == offer
    assert XferPull.decode(XferPull("t").encode()) == XferPull("t")
    log = WfLog("r", "j", 1, "STDOUT", ("a", "", "ü"))
    assert WfLog.decode(log.encode()) == log
    rec = WfReceipt(b"body", b"s" * 64)
    assert WfReceipt.decode(rec.encode()) == rec


@given(index=st.integers(0, 2**63 - 1), data=st.binary(max_size=4096),
       tid=st.text(min_size=1, max_size=40))
def test_chunks_round_trip_in_binary(index: int, data: bytes, tid: str) -> None:
    chunk = XferChunk(tc.Chunk(tid, index, os.urandom(32), data))
    assert XferChunk.decode(chunk.encode()) == chunk


@pytest.mark.parametrize("body, needle", [
    (bencode({"k": "Nope", "b": {}}), "unknown kind"),
    (bencode({"k": "JobAccepted", "b": {"run_id": "r", "job": "j"}}), "'attempt' is missing"),
    (bencode({"k": "JobAccepted", "b": {"run_id": 3, "job": "j", "attempt": 1}}), "run_id"),
    (bencode({"k": "JobStatusReported", "b": {"run_id": "r", "job": "j", "attempt": 1,
                                              "state": "FLYING"}}), "not a ExecState"),
    (b"garbage", "workflow report: body is not"),
])
def test_bad_reports_name_what_is_wrong(body: bytes, needle: str) -> None:
    with pytest.raises(RemoteProtocolError, match=needle):
        WfReport.decode(body)


def test_a_short_peer_id_is_refused() -> None:
    body = bencode({"k": "ReleaseJob", "b": {"peer": b"short", "run_id": "r", "job": "j",
                                             "attempt": 1}})
    with pytest.raises(RemoteProtocolError, match="32-byte peer id"):
        WfCommand.decode(body)


def test_truncated_chunk_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="truncated"):
        XferChunk.decode(b"\x00\x01")


def _receipt(executor: Identity) -> Receipt:
    return Receipt("r", "j", 1, OTHER, executor.peer_id, "sid", "busybox", "sha256:abc",
                   (Digest("STDIN:stdin.in", 3, "aa"),), (Digest("STDOUT", 4, "bb"),), 0, 1, 2)


def test_a_receipt_verifies_and_any_change_breaks_it() -> None:
    executor = Identity(b"\x07" * 32)
    signed = sign_receipt(executor, _receipt(executor))
    assert open_receipt(signed.body, signed.signature).receipt == _receipt(executor)
    for i in range(0, len(signed.body), 7):
        forged = bytearray(signed.body)
        forged[i] ^= 0x01
        with pytest.raises(RemoteProtocolError):
            open_receipt(bytes(forged), signed.signature)


def test_a_receipt_signed_by_the_wrong_key_is_refused() -> None:
    executor, impostor = Identity(b"\x07" * 32), Identity(b"\x08" * 32)
    body = _receipt(executor).encode()
    with pytest.raises(RemoteProtocolError, match="signature"):
        open_receipt(body, impostor.sign(b"rnn-receipt-v1\x00" + body))
    with pytest.raises(ValueError):
        sign_receipt(impostor, _receipt(executor))


def test_spread_candidates_rotates_per_service() -> None:
    a, b, c = (Candidate(p, "busybox") for p in (PEER, OTHER, Identity(b"\x03" * 32).peer_id))
    data = Candidate(PEER, "data")
    out = spread_candidates([("src", [data]), ("x", [a, b, c]), ("y", [a, b, c]),
                             ("z", [a, b, c]), ("w", [a, b, c])])
    assert out["src"] == [data]
    assert [out[j][0] for j in "xyzw"] == [a, b, c, a]
    assert all(sorted(out[j], key=str) == sorted([a, b, c], key=str) for j in "xyzw")


def test_result_names_default_from_the_port() -> None:
    wf = load_workflow("""\
name: t
jobs:
  - {name: a, service: s, mounts: {/out: OUTPUT}}
connections:
  - {from: a.STDOUT, to: self}
  - {from: a.MOUNT:/out/r.csv, to: self}
  - {from: a.STDERR, to: self, file: err.log}
""").workflow
    assert [result_name(wf, i) for i in range(3)] == ["a.STDOUT", "a.out_r.csv", "err.log"]


def test_log_lines_travel_as_one_text_and_are_checked() -> None:
    many = WfLog("r", "j", 1, "STDOUT", tuple(str(i * i) for i in range(2000)))
    assert WfLog.decode(many.encode()) == many
    empty = WfLog("r", "j", 1, "STDERR", ())
    assert WfLog.decode(empty.encode()) == empty
    blank = WfLog("r", "j", 1, "STDERR", ("",))
    assert WfLog.decode(blank.encode()) == blank
    with pytest.raises(ValueError, match="newline"):
        WfLog("r", "j", 1, "STDOUT", ("two\nlines",))
    body = bencode({b"run_id": b"r", b"job": b"j", b"attempt": 1, b"stream": b"STDOUT",
                    b"count": 3, b"text": b"a\nb"})
    with pytest.raises(RemoteProtocolError, match="count"):
        WfLog.decode(body)
    body = bencode({b"run_id": b"r", b"job": b"j", b"attempt": 1, b"stream": b"STDOUT",
                    b"count": 1, b"text": b"\xff"})
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        WfLog.decode(body)
