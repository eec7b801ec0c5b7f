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

from dataclasses import dataclass

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.identity.keys import Identity, PeerId, verify_signature
from rnn_tui.transport.messages import bdecode_dict, bencode
from rnn_tui.workflow.wire import from_plain, to_plain

__all__ = ["DOMAIN", "Digest", "Receipt", "SignedReceipt", "sign_receipt", "open_receipt"]

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
