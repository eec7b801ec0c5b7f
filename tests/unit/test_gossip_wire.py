"""Gossip wire format: canonical encoding, strict decoding, ids that ignore hops."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.dht import codec
from rnn_tui.gossip.wire import (
    SIGNING_PREFIX,
    Frame,
    MalformedFrame,
    SignedMessage,
    WireLimits,
    decode_frame,
    encode_frame,
    frame_as_dict,
)
from rnn_tui.identity import Identity, verify_signature

LIMITS = WireLimits()
ALICE = Identity(b"\x01" * 32)


def signed(payload: bytes = b"hello", seq: int = 7, topic: str = "rnn/services/1",
           ts_ms: int = 1_700_000_000_000, identity: Identity = ALICE) -> SignedMessage:
    probe = SignedMessage.build(identity.public_key, seq, topic, payload, ts_ms, bytes(64))
    return SignedMessage.build(identity.public_key, seq, topic, payload, ts_ms, identity.sign(probe.signed))


def test_full_frame_round_trips() -> None:
    message = signed()
    frame = Frame(
        subscriptions=(("a", True), ("b", False)),
        messages=((message, 3),),
        ihave=(("a", (b"\x01" * 20, b"\x02" * 20)),),
        iwant=(b"\x03" * 20,),
        graft=("a",),
        prune=(("b", 60),),
    )
    decoded = decode_frame(encode_frame(frame), LIMITS)
    assert decoded == frame
    assert decoded.messages[0][0].msg_id == message.msg_id
    assert verify_signature(message.author, decoded.messages[0][0].signed, message.signature)


def test_signed_bytes_are_the_canonical_bencode_of_the_signed_fields() -> None:
    m = signed(payload=b"\x00" * 300, seq=2**40, topic="t\u00e9")
    body = {b"a": m.author, b"d": m.payload, b"q": m.seq, b"t": m.topic.encode(), b"ts": m.timestamp_ms}
    assert m.signed == SIGNING_PREFIX + codec.encode(body)


def test_message_id_ignores_hops_but_covers_signature_and_payload() -> None:
    message = signed()
    frame_a = decode_frame(encode_frame(Frame(messages=((message, 1),))), LIMITS)
    frame_b = decode_frame(encode_frame(Frame(messages=((message, 9),))), LIMITS)
    assert frame_a.messages[0][0].msg_id == frame_b.messages[0][0].msg_id
    forged_sig = SignedMessage.build(message.author, message.seq, message.topic, message.payload,
                                     message.timestamp_ms, bytes(64))
    assert forged_sig.msg_id != message.msg_id
    assert signed(payload=b"other").msg_id != message.msg_id


def _raw_message(**override: object) -> bytes:
    fields = {"a": b"32:" + b"A" * 32, "d": b"2:hi", "g": b"64:" + b"G" * 64, "h": b"i0e",
              "q": b"i1e", "t": b"1:t", "ts": b"i5e"}
    fields.update({k: v for k, v in override.items() if isinstance(v, bytes)})
    body = b"".join(b"%d:%s%s" % (len(k), k.encode(), fields[k]) for k in sorted(fields))
    return b"d3:msgld" + body + b"ee1:vi1ee"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"not bencode", "not canonical bencode"),
        (b"i3e", "top level is not a dict"),
        (b"d1:vi2ee", "version"),
        (b"d1:vi1e1:xi0ee", "unknown keys"),
        (b"d1:vi01ee", "canonical"),
        (b"d1:vi1ee" + b"junk", "trailing bytes"),
        (b"d5:graft1:x1:vi1ee", "graft is not a list"),
        (b"d5:iwantl3:abce1:vi1ee", "message id"),
        (b"d3:subll1:ti2eee1:vi1ee", "sub[0] flag"),
        (b"d3:subll2:\xff\xfei1eee1:vi1ee", "UTF-8"),
        (_raw_message(a=b"3:abc"), "author"),
        (_raw_message(g=b"2:xx"), "signature"),
        (_raw_message(h=b"i-1e"), "hops"),
        (_raw_message(q=b"2:no"), "seq"),
        (_raw_message(d=b"i5e"), "payload"),
    ],
)
def test_malformed_frames_name_the_problem(data: bytes, needle: str) -> None:
    with pytest.raises(MalformedFrame, match=re.escape(needle)):
        decode_frame(data, LIMITS)


def test_unsorted_keys_are_refused() -> None:
    with pytest.raises(MalformedFrame, match="canonical"):
        decode_frame(b"d1:vi1e5:graftl1:aee", LIMITS)


def test_size_limits_apply_before_and_while_parsing() -> None:
    small = WireLimits(max_frame_bytes=100, max_payload_bytes=4, max_ids=2)
    with pytest.raises(MalformedFrame, match="exceeds"):
        decode_frame(b"x" * 101, small)
    big_payload = encode_frame(Frame(messages=((signed(payload=b"12345"), 0),)))
    with pytest.raises(MalformedFrame, match="payload of 5 bytes"):
        decode_frame(big_payload, WireLimits(max_payload_bytes=4))
    with pytest.raises(MalformedFrame, match="3 entries"):
        decode_frame(encode_frame(Frame(iwant=(b"\x00" * 20,) * 3)), small)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_malformed(data: bytes) -> None:
    try:
        decode_frame(data, LIMITS)
    except MalformedFrame:
        pass


topics = st.text(min_size=1, max_size=20).filter(lambda t: len(t.encode()) <= 128)
ids = st.binary(min_size=20, max_size=20)


@settings(max_examples=100, deadline=None)
@given(
    subs=st.lists(st.tuples(topics, st.booleans()), max_size=5),
    ihave=st.lists(st.tuples(topics, st.lists(ids, max_size=4).map(tuple)), max_size=3),
    iwant=st.lists(ids, max_size=5),
    graft=st.lists(topics, max_size=3),
    prune=st.lists(st.tuples(topics, st.integers(0, 86_400)), max_size=3),
)
def test_random_frames_round_trip(subs: list[tuple[str, bool]], ihave: list[tuple[str, tuple[bytes, ...]]],
                                  iwant: list[bytes], graft: list[str], prune: list[tuple[str, int]]) -> None:
    frame = Frame(tuple(subs), ((signed(), 3),), tuple(ihave), tuple(iwant), tuple(graft), tuple(prune))
    data = encode_frame(frame)
    assert data == codec.encode(frame_as_dict(frame))   # hand-assembled == reference encoder
    assert decode_frame(data, LIMITS) == frame
