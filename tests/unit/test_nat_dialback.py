"""Dial-back core: nonces, what a probe must prove, and the serving side's rate limits."""

from __future__ import annotations

import itertools

import pytest

from rnn_tui.nat.dialback import (
    DIAL_BACK_MAGIC,
    NONCE_LEN,
    DialBackConfig,
    DialBackConfirmed,
    DialBackCore,
    DialBackProbe,
    DialBackRejected,
    DialBackReply,
    DialBackRequest,
    decode_probe,
    encode_probe,
)
from rnn_tui.nat.wire import PROBE_MAGIC

ASKED = ("198.51.100.1", 6881)
PROBER = ("198.51.100.1", 50123)  # same host, fresh port
ME = ("203.0.113.7", 40000)


def counter_bytes():  # deterministic "randomness"
    c = itertools.count(1)
    return lambda n: next(c).to_bytes(n, "big")


def core(**kw) -> DialBackCore:
    return DialBackCore(DialBackConfig(**kw), rng_bytes=counter_bytes())


def probe(nonce: bytes, target=ME) -> bytes:
    return encode_probe(DialBackProbe(nonce, target))


def test_probe_round_trip_and_garbage():
    nonce = bytes(range(NONCE_LEN))
    data = probe(nonce)
    assert data.startswith(DIAL_BACK_MAGIC) and not data.startswith(PROBE_MAGIC)
    assert decode_probe(data) == DialBackProbe(nonce, ME)
    assert decode_probe(data[:-1]) is None
    assert decode_probe(b"\x00RND" + b"x" * 5) is None
    assert decode_probe(DIAL_BACK_MAGIC + nonce + b"\x00\x01\x03bad") is None


def test_messages_round_trip_and_validate():
    req = DialBackRequest(b"n" * NONCE_LEN)
    assert DialBackRequest.decode(req.encode()) == req
    with pytest.raises(ValueError):
        DialBackRequest(b"short")
    rep = DialBackReply(False, "busy")
    assert DialBackReply.decode(rep.encode()) == rep
    with pytest.raises(ValueError):
        DialBackReply.decode(b"\x07")


def test_a_valid_probe_from_a_fresh_port_confirms_once():
    c = core()
    nonce = c.begin(ASKED, 0.0)
    assert nonce is not None and c.pending == 1
    out = c.probe_received(probe(nonce), PROBER, sent_to=False, now=1.0)
    assert out == DialBackConfirmed(PROBER, ME, ASKED)
    again = c.probe_received(probe(nonce), PROBER, sent_to=False, now=1.1)
    assert isinstance(again, DialBackRejected) and "unknown" in again.reason


@pytest.mark.parametrize(("source", "sent_to", "why"), [
    (ASKED, False, "asked peer"),
    (PROBER, True, "sent to"),
])
def test_probes_that_prove_nothing_are_rejected(source, sent_to, why):
    c = core()
    nonce = c.begin(ASKED, 0.0)
    out = c.probe_received(probe(nonce), source, sent_to=sent_to, now=1.0)
    assert isinstance(out, DialBackRejected) and why in out.reason
    assert c.pending == 1, "a rejected probe does not use up the nonce"


def test_nonces_expire_and_are_bounded():
    c = core(wait=5.0, max_pending=2)
    n1 = c.begin(ASKED, 0.0)
    assert c.begin(ASKED, 0.0) is not None
    assert c.begin(ASKED, 1.0) is None, "too many outstanding"
    assert n1 is not None
    out = c.probe_received(probe(n1), PROBER, sent_to=False, now=5.0)
    assert isinstance(out, DialBackRejected) and "expired" in out.reason
    assert c.begin(ASKED, 5.0) is not None


def test_a_forged_nonce_is_rejected():
    c = core()
    c.begin(ASKED, 0.0)
    out = c.probe_received(probe(b"\xff" * NONCE_LEN), PROBER, sent_to=False, now=0.5)
    assert isinstance(out, DialBackRejected)


def test_serving_is_rate_limited_per_ip_and_overall():
    c = core(per_ip_interval=30.0, window=60.0, max_per_window=3)
    assert c.admit("10.0.0.1", 0.0) is None
    reason = c.admit("10.0.0.1", 10.0)
    assert reason is not None and "per address" in reason
    assert c.admit("10.0.0.1", 30.0) is None
    assert c.admit("10.0.0.2", 31.0) is None
    busy = c.admit("10.0.0.3", 32.0)
    assert busy is not None and "busy" in busy
    assert c.admit("10.0.0.3", 60.0) is None, "the window slid past the first one"


def test_arrived_tells_a_confirmed_nonce_from_one_that_never_came():
    c = core(wait=5.0)
    n1, n2 = c.begin(ASKED, 0.0), c.begin(ASKED, 0.0)
    assert n1 is not None and n2 is not None
    c.probe_received(probe(n1), PROBER, sent_to=False, now=1.0)
    c.probe_received(probe(n2), ASKED, sent_to=False, now=1.0)  # rejected
    c.probe_received(probe(n2), PROBER, sent_to=False, now=6.0)  # too late
    assert c.arrived(n1) and not c.arrived(n2)
