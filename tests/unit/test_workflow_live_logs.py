"""LiveLog (live log lines within a budget) and OutputCache (the resume cache), in process."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from rnn_tui.workflow.live_logs import LOG_BATCH, MAX_LOG_LINE, LiveBudget, LiveLog
from rnn_tui.workflow.output_cache import OutputCache


def _collect() -> tuple[list[tuple[str, list[str]]], LiveLog]:
    sent: list[tuple[str, list[str]]] = []
    return sent, LiveLog(lambda stream, lines: sent.append((stream, list(lines))),
                         LiveBudget(burst=3, per_s=1.0, tokens=3))


def test_whole_lines_go_partial_lines_wait_and_flush_at_exit() -> None:
    sent, logs = _collect()
    logs.feed("stdout", b"a\nb", now=0.0)
    logs.feed("stdout", b"c\n", now=0.0)
    logs.feed("stderr", b"tail", now=0.0)
    assert sent == [("stdout", ["a"]), ("stdout", ["bc"])]
    logs.flush()
    assert sent[2:] == [("stderr", ["tail"])]
    assert not logs.partial


def test_lines_over_the_budget_are_counted_and_noted_once() -> None:
    sent, logs = _collect()
    logs.feed("stdout", b"1\n2\n3\n4\n5\n", now=0.0)  # burst 3: two over, noted first
    note = sent[0][1][0]
    assert sent == [("stdout", [note, "1", "2", "3"])]
    assert note.startswith("[rnn] 2 lines of stdout were not streamed live")
    logs.feed("stdout", b"6\n7\n", now=0.0)           # empty bucket: counted, not decoded
    assert len(sent) == 1
    logs.feed("stdout", b"8\n", now=1.0)              # one token back: the note, then the line
    assert sent[1][1] == [note, "8"]
    logs.feed("stdout", b"9\n10\n", now=1.0)
    logs.flush()
    assert sent[-1] == ("stdout", ["[rnn] 2 lines of stdout were not streamed live (over 3 "
                                   "lines at once or 1/s); the job's STDOUT output has them all"])


def test_send_batches_and_cuts_long_lines() -> None:
    sent, logs = _collect()
    logs.send("stderr", ["x" * (MAX_LOG_LINE + 10)] + ["y"] * LOG_BATCH)
    assert [len(lines) for _s, lines in sent] == [LOG_BATCH, 1]
    assert len(sent[0][1][0]) == MAX_LOG_LINE


def test_output_cache_round_trip_and_refuses_tampered_or_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "stdout"
    out.write_bytes(b"result\n")
    cache = OutputCache(tmp_path / "cache")
    sha = hashlib.sha256(b"result\n").hexdigest()
    cache.store("k1", {"STDOUT": (out, 7, sha)})
    got = asyncio.run(cache.lookup("k1", {"STDOUT"}))
    assert got is not None and got["STDOUT"][1:] == (7, sha)
    assert got["STDOUT"][0].read_bytes() == b"result\n"
    assert asyncio.run(cache.lookup("k1", {"STDOUT", "STDERR"})) is None  # not all there
    assert asyncio.run(cache.lookup("missing", {"STDOUT"})) is None
    got["STDOUT"][0].write_bytes(b"tampered\n")
    assert asyncio.run(cache.lookup("k1", {"STDOUT"})) is None
    manifest = cache.folder("k1") / "manifest.json"
    manifest.write_text(json.dumps({"STDOUT": {"file": "../../etc/passwd", "size": 1,
                                               "sha256": sha}}), "utf-8")
    assert asyncio.run(cache.lookup("k1", {"STDOUT"})) is None
    manifest.write_text("[\"STDOUT\"]", "utf-8")                       # not a mapping
    assert asyncio.run(cache.lookup("k1", {"STDOUT"})) is None
