"""``rnn gossip stats``: argument parsing, rendering a real core's stats, no node running."""

from __future__ import annotations

import json
import random

import pytest

from rnn_tui.cli import main
from rnn_tui.commands.gossip import render_stats
from rnn_tui.gossip import GossipCore
from rnn_tui.gossip.wire import Frame, encode_frame
from rnn_tui.identity import Identity

TOPIC = "rnn/services/1"


def _stats() -> dict[str, object]:
    a = GossipCore(Identity(b"\x01" * 32), random.Random(1))
    b = GossipCore(Identity(b"\x02" * 32), random.Random(2))
    a.subscribe(TOPIC)
    b.subscribe(TOPIC)
    a.peer_connected(b.peer_id, 100.0)
    b.peer_connected(a.peer_id, 100.0)
    for _peer, data in a.messages_to_send():
        b.receive(a.peer_id, data, 100.0)
    for _peer, data in b.messages_to_send():
        a.receive(b.peer_id, data, 100.0)
    a.receive(b.peer_id, b"junk", 100.0)
    a.receive(b.peer_id, encode_frame(Frame(graft=(TOPIC,))), 100.0)
    return json.loads(json.dumps(a.stats().to_dict()))


def test_render_shows_topics_mesh_traffic_drops_and_penalties() -> None:
    stats = _stats()
    text = render_stats(stats)
    assert TOPIC in text
    assert "connected peers 1" in text
    assert "duplicates 0" in text and "invalid 1" in text
    assert "malformed 1" in text
    assert "penalized" in text and "(-10)" in text
    assert "COUNTER" in render_stats(stats, show_all=True)


def test_stats_without_a_running_node_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gossip", "stats"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no node is running" in err


def test_gossip_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["gossip"])
    assert "required: ACTION" in capsys.readouterr().err
