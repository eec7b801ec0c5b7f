"""Signed receipts: an executor's statement of what it ran, on what, producing what.

Why a signature and not just the report: the report travels once, over one connection; a
receipt is kept.  Anyone holding it (the requester today, an auditor later) can check,
without trusting the requester's database, that the executor whose key signed it claims to
have run service S with image digest D on inputs with these hashes and produced outputs with
those hashes.  A tampered receipt fails the signature; a tampered output fails its hash.

The signed bytes are ``DOMAIN + canonical bencode(body)``, so a receipt signature can never be
confused with any other signature the same key makes (peer records, gossip).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rnn_tui.errors import RemoteProtocolError, WorkflowError
from rnn_tui.identity.keys import Identity, PeerId, verify_signature
from rnn_tui.transport.messages import bdecode_dict, bencode
from rnn_tui.workflow.wire import from_plain, to_plain

__all__ = ["DOMAIN", "Digest", "Receipt", "SignedReceipt", "sign_receipt", "open_receipt",
           "ReceiptMismatch", "verify_receipt", "check_outputs", "verify_output_file",
           "params_digest", "cache_key", "cache_key_of", "RedundancyVerdict",
           "compare_redundant"]

DOMAIN = b"rnn-receipt-v1\x00"


@dataclass(frozen=True, slots=True)
class Digest:
    """One input received or output produced: its interface key (and file), size, sha256."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the executor signs.  Times are wall-clock milliseconds since the epoch."""

    run_id: str
    job: str
    attempt: int
    requester: PeerId
    executor: PeerId
    service_id: str
    service_name: str
    image_digest: str
    inputs: tuple[Digest, ...]
    outputs: tuple[Digest, ...]
    exit_code: int
    started_ms: int
    ended_ms: int
    params_sha256: str = ""
    """:func:`params_digest` of the env and args the job ran with (for the resume cache)."""

    def output(self, name: str) -> Digest | None:
        return next((d for d in self.outputs if d.name == name), None)

    def encode(self) -> bytes:
        return bencode(to_plain(self))


@dataclass(frozen=True, slots=True)
class SignedReceipt:
    body: bytes
    signature: bytes
    receipt: Receipt


def sign_receipt(identity: Identity, receipt: Receipt) -> SignedReceipt:
    if receipt.executor != identity.peer_id:
        raise ValueError("a receipt is signed by its executor")
    body = receipt.encode()
    return SignedReceipt(body, identity.sign(DOMAIN + body), receipt)


def open_receipt(body: bytes, signature: bytes) -> SignedReceipt:
    """Decode and verify; ``RemoteProtocolError`` says what is wrong (form or signature)."""
    receipt: Receipt = from_plain(Receipt, bdecode_dict(body, "receipt"), "receipt")
    if not verify_signature(receipt.executor.key, DOMAIN + body, signature):
        raise RemoteProtocolError(f"receipt for job {receipt.job!r} of run {receipt.run_id}: "
                                  f"the signature is not {receipt.executor.short}'s")
    return SignedReceipt(body, signature, receipt)


# --------------------------------------------------------------------------- checking


class ReceiptMismatch(RemoteProtocolError):
    """A validly signed receipt that is not about what we asked, or outputs that differ."""


def verify_receipt(signed: SignedReceipt, *, executor: PeerId | None = None,
                   requester: PeerId | None = None, run_id: str | None = None,
                   job: str | None = None, attempt: int | None = None) -> Receipt:
    """Requester side, after :func:`open_receipt`: is this the receipt we are owed?

    ``open_receipt`` proves the key named *in* the receipt signed it; here we check that key
    is the executor we routed the job to (anything else is "signed by the wrong key"), and
    that run, job, attempt and requester are ours.  Re-checks the signature too, so a
    ``SignedReceipt`` built by hand (or loaded from the store) cannot skip it.
    """
    receipt = signed.receipt
    if not verify_signature(receipt.executor.key, DOMAIN + signed.body, signed.signature) \
            or receipt.encode() != signed.body:
        raise ReceiptMismatch(f"receipt for job {receipt.job!r}: the signature does not "
                              f"verify with {receipt.executor.short}'s key")
    checks: list[tuple[str, object, object]] = [
        ("executor", executor, receipt.executor), ("requester", requester, receipt.requester),
        ("run", run_id, receipt.run_id), ("job", job, receipt.job),
        ("attempt", attempt, receipt.attempt),
    ]
    for what, wanted, got in checks:
        if wanted is not None and wanted != got:
            detail = "signed by the wrong key" if what == "executor" else "about another job"
            shown = (got.short, wanted.short) if isinstance(got, PeerId) and \
                isinstance(wanted, PeerId) else (got, wanted)
            raise ReceiptMismatch(f"receipt for job {receipt.job!r}: {detail}: {what} is "
                                  f"{shown[0]}, expected {shown[1]}")
    if receipt.ended_ms < receipt.started_ms:
        raise ReceiptMismatch(f"receipt for job {receipt.job!r}: it ends before it starts")
    return receipt


def check_outputs(receipt: Receipt, delivered: Mapping[str, str]) -> list[str]:
    """Problems between delivered outputs (name → sha256 hex) and the receipt; [] if none.

    Every delivered output must be listed with the same hash.  A receipt may list outputs
    that went to other receivers; each receiver checks what it got.
    """
    problems = []
    for name, sha in sorted(delivered.items()):
        listed = receipt.output(name)
        if listed is None:
            problems.append(f"output {name!r} is not in the receipt of job {receipt.job!r}")
        elif listed.sha256 != sha:
            problems.append(f"output {name!r} of job {receipt.job!r} does not match its "
                            f"receipt (sha256 {sha[:12]}..., receipt says "
                            f"{listed.sha256[:12]}...)")
    return problems


def verify_output_file(receipt: Receipt, name: str, path: Path) -> None:
    """Re-hash a stored output (streaming, never whole) against the receipt."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            hasher.update(block)
    problems = check_outputs(receipt, {name: hasher.hexdigest()})
    if problems:
        raise ReceiptMismatch(problems[0])


# --------------------------------------------------------------------------- resume cache


def params_digest(env: Sequence[tuple[str, str]], args: Sequence[str]) -> str:
    """sha256 hex of a job's parameters (env pairs and args, in order)."""
    body = bencode({"env": [[k, v] for k, v in env], "args": list(args)})
    return hashlib.sha256(b"rnn-params-v1\x00" + body).hexdigest()


def cache_key(image_digest: str, params_sha256: str, input_hashes: Mapping[str, str]) -> str:
    """Nextflow-style resume key: same image, same parameters, same inputs → same key.

    The requester computes it for a job about to run (inputs known from the upstream
    receipts) and looks for a stored, verified, exit-0 receipt whose :func:`cache_key_of` is
    equal; on a hit (and with resume enabled for the run) it reuses that receipt's outputs.
    """
    body = bencode({"image": image_digest, "params": params_sha256,
                    "inputs": [[k, v] for k, v in sorted(input_hashes.items())]})
    return hashlib.sha256(b"rnn-cache-v1\x00" + body).hexdigest()


def cache_key_of(receipt: Receipt) -> str:
    return cache_key(receipt.image_digest, receipt.params_sha256,
                     {d.name: d.sha256 for d in receipt.inputs})


# --------------------------------------------------------------------------- redundancy


@dataclass(frozen=True, slots=True)
class RedundancyVerdict:
    """Outcome of one job run on k executors (Bacalhau's concurrency/confidence).

    ``outputs`` is the output set a strict majority of successful, verified receipts agree
    on (``None`` without a majority); ``dissenters`` are the executors that differ from it.
    """

    agreed: bool
    unanimous: bool
    outputs: tuple[tuple[str, str], ...] | None
    dissenters: tuple[PeerId, ...]


def compare_redundant(receipts: Sequence[Receipt]) -> RedundancyVerdict:
    """Compare *verified* receipts of the same job from distinct executors."""
    if not receipts:
        raise WorkflowError("compare_redundant needs at least one receipt")
    if len({(r.run_id, r.job) for r in receipts}) != 1:
        raise WorkflowError("compare_redundant: the receipts are about different jobs")
    if len({r.executor for r in receipts}) != len(receipts):
        raise WorkflowError("compare_redundant: an executor is counted twice")

    def fingerprint(r: Receipt) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((d.name, d.sha256) for d in r.outputs))

    votes = Counter(fingerprint(r) for r in receipts if r.exit_code == 0)
    everyone = tuple(r.executor for r in receipts)
    if not votes:
        return RedundancyVerdict(False, False, None, everyone)
    outputs, count = votes.most_common(1)[0]
    if count * 2 <= len(receipts):
        return RedundancyVerdict(False, False, None, everyone)
    dissenters = tuple(r.executor for r in receipts
                       if r.exit_code != 0 or fingerprint(r) != outputs)
    return RedundancyVerdict(True, not dissenters, outputs, dissenters)
