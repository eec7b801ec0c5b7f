"""Untrusted input never escapes as anything but our own errors (Hypothesis).

Catalogs and search replies come from peers: whatever they send, decoding either works or
raises ``ServiceSpecError`` / ``RemoteProtocolError`` -- never KeyError, TypeError & co.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rnn_tui.errors import RemoteProtocolError
from rnn_tui.identity import Identity
from rnn_tui.services.interfaces import parse_interfaces_label
from rnn_tui.services.messages import ServiceSearchQuery, ServiceSearchReply
from rnn_tui.services.model import Service, ServiceKind, ServiceSpecError
from rnn_tui.transport.messages import bencode

OWNER = Identity(b"\x05" * 32).peer_id
GOOD = Service.new(OWNER, "tool", ServiceKind.DOCKER, 1, image_digest="sha256:" + "d" * 64).to_dict()

scalars = st.one_of(st.integers(-3, 2**40), st.text(max_size=12), st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12)


def mutated(base: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(base)
    out[key] = value
    return out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(GOOD) + ["extra"]), values)
def test_service_from_dict_raises_only_spec_errors(key: str, value: Any) -> None:
    try:
        Service.from_dict(mutated(GOOD, key, value))
    except ServiceSpecError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=10), values, max_size=6))
def test_arbitrary_mappings_are_refused_cleanly(data: dict[str, Any]) -> None:
    try:
        Service.from_dict(data)
    except ServiceSpecError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_reply_decoding_raises_only_protocol_errors(body: bytes) -> None:
    for cls in (ServiceSearchReply, ServiceSearchQuery):
        try:
            cls.decode(body)
        except RemoteProtocolError:
            pass


@settings(max_examples=100, deadline=None)
@given(st.lists(values, max_size=5))
def test_bencoded_garbage_entries_are_dropped_not_raised(entries: list[Any]) -> None:
    try:
        body = bencode({"s": entries})
    except Exception:  # not encodable (e.g. mixed key types): nothing to decode
        return
    try:
        reply = ServiceSearchReply.decode(body)
    except RemoteProtocolError:
        return
    assert len(reply.services) + reply.dropped == len(entries)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_label_parsing_raises_only_spec_errors(text: str) -> None:
    try:
        parse_interfaces_label(text)
    except ServiceSpecError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(
    ["name", "description", "version", "visibility", "allow", "cpu_millis", "memory_bytes",
     "pids", "network", "timeout_s", "interfaces", "phrase", "kind", "interface", "limit"]),
    st.one_of(values, st.booleans(), st.none()), max_size=6))
def test_control_params_raise_only_spec_errors(params: dict[str, Any]) -> None:
    from rnn_tui.services.control_api import options_from_params, query_from_params

    for parse in (options_from_params, query_from_params):
        try:
            parse(params)
        except ServiceSpecError:
            pass
