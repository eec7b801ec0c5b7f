"""Signed receipts: sign, open, verify against the routing, detect tampering; the resume
cache key and redundancy comparison."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from rnn_tui.errors import RemoteProtocolError, WorkflowError
from rnn_tui.identity.keys import Identity
from rnn_tui.workflow.receipts import (
    Digest,
    Receipt,
    ReceiptMismatch,
    SignedReceipt,
    cache_key,
    cache_key_of,
    check_outputs,
    compare_redundant,
    open_receipt,
    params_digest,
    sign_receipt,
    verify_output_file,
    verify_receipt,
)

EXECUTOR = Identity(b"\x01" * 32)
OTHER = Identity(b"\x02" * 32)
REQUESTER = Identity(b"\x03" * 32)
OUT = b"12 the\n8 and\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def receipt(executor: Identity = EXECUTOR, **changes: object) -> Receipt:
    base = Receipt(
        run_id="run-1", job="count", attempt=1, requester=REQUESTER.peer_id,
        executor=executor.peer_id, service_id="a" * 32, service_name="busybox",
        image_digest="sha256:" + "b" * 64,
        inputs=(Digest("STDIN", 5, sha(b"words")),),
        outputs=(Digest("STDOUT", len(OUT), sha(OUT)), Digest("STDERR", 0, sha(b""))),
        exit_code=0, started_ms=1_700_000_000_000, ended_ms=1_700_000_000_250,
        params_sha256=params_digest((("LANG", "C"),), ("sh", "-c", "sort")))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_sign_open_verify_round_trip() -> None:
    signed = sign_receipt(EXECUTOR, receipt())
    opened = open_receipt(signed.body, signed.signature)
    assert opened.receipt == receipt()
    checked = verify_receipt(opened, executor=EXECUTOR.peer_id, requester=REQUESTER.peer_id,
                             run_id="run-1", job="count", attempt=1)
    assert checked.output("STDOUT") == Digest("STDOUT", len(OUT), sha(OUT))


def test_receipt_signed_by_the_wrong_key_is_detected() -> None:
    # OTHER signs a receipt naming itself: the signature is valid, but it is not our executor
    forged = sign_receipt(OTHER, receipt(OTHER))
    opened = open_receipt(forged.body, forged.signature)
    with pytest.raises(ReceiptMismatch, match="signed by the wrong key"):
        verify_receipt(opened, executor=EXECUTOR.peer_id)
    # OTHER signs a receipt naming EXECUTOR: the signature does not verify
    body = receipt().encode()
    with pytest.raises(RemoteProtocolError, match="signature is not"):
        open_receipt(body, OTHER.sign(b"rnn-receipt-v1\x00" + body))
    with pytest.raises(ValueError):
        sign_receipt(OTHER, receipt())


def test_tampered_receipt_is_detected() -> None:
    signed = sign_receipt(EXECUTOR, receipt())
    tampered_body = signed.body.replace(b"i0e", b"i1e", 1)  # exit code 0 -> 1
    assert tampered_body != signed.body
    with pytest.raises(RemoteProtocolError, match="signature"):
        open_receipt(tampered_body, signed.signature)
    # a receipt object edited after signing (e.g. in a store) fails verify_receipt too
    edited = SignedReceipt(signed.body, signed.signature, receipt(exit_code=3))
    with pytest.raises(ReceiptMismatch, match="does not verify"):
        verify_receipt(edited)


def test_receipt_about_another_job_is_refused() -> None:
    opened = sign_receipt(EXECUTOR, receipt())
    for field, value in (("run_id", "run-2"), ("job", "other"), ("attempt", 2)):
        with pytest.raises(ReceiptMismatch, match="about another job"):
            verify_receipt(opened, **{field: value})  # type: ignore[arg-type]
    backwards = sign_receipt(EXECUTOR, receipt(ended_ms=1))
    with pytest.raises(ReceiptMismatch, match="ends before it starts"):
        verify_receipt(backwards)


def test_delivered_outputs_are_checked_against_the_receipt(tmp_path: Path) -> None:
    r = receipt()
    assert check_outputs(r, {"STDOUT": sha(OUT)}) == []
    problems = check_outputs(r, {"STDOUT": sha(OUT + b"x"), "MOUNT:/out/x": sha(b"")})
    assert len(problems) == 2
    assert "output 'MOUNT:/out/x' is not in the receipt" in problems[0]
    assert "output 'STDOUT' of job 'count' does not match its receipt" in problems[1]
    good = tmp_path / "good.txt"
    good.write_bytes(OUT)
    verify_output_file(r, "STDOUT", good)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(OUT.replace(b"12", b"13"))
    with pytest.raises(ReceiptMismatch, match="does not match its receipt"):
        verify_output_file(r, "STDOUT", bad)


def test_cache_key_depends_on_image_params_and_inputs_only() -> None:
    r = receipt()
    key = cache_key_of(r)
    assert key == cache_key_of(replace(r, run_id="run-9", executor=OTHER.peer_id, ended_ms=2))
    assert key == cache_key(r.image_digest, r.params_sha256, {"STDIN": sha(b"words")})
    assert key != cache_key_of(replace(r, image_digest="sha256:" + "c" * 64))
    assert key != cache_key_of(replace(r, params_sha256=params_digest((), ("sh",))))
    assert key != cache_key_of(replace(r, inputs=(Digest("STDIN", 5, sha(b"other")),)))
    assert params_digest((("A", "1"),), ()) != params_digest((), ("A=1",))


def test_redundancy_majority_and_dissent() -> None:
    peers = [Identity(bytes([i]) * 32) for i in range(10, 13)]
    same = [receipt(p) for p in peers]
    verdict = compare_redundant(same)
    assert verdict.agreed and verdict.unanimous and verdict.dissenters == ()
    odd = [same[0], same[1], replace(same[2], outputs=(Digest("STDOUT", 1, sha(b"x")),))]
    verdict = compare_redundant(odd)
    assert verdict.agreed and not verdict.unanimous
    assert verdict.dissenters == (peers[2].peer_id,)
    split = [same[0], replace(same[1], exit_code=1)]
    assert not compare_redundant(split).agreed
    with pytest.raises(WorkflowError, match="counted twice"):
        compare_redundant([same[0], same[0]])
    with pytest.raises(WorkflowError, match="different jobs"):
        compare_redundant([same[0], replace(same[1], job="x")])
