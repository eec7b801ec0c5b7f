"""The bounded, batched log buffer and line formatting (pure)."""

from __future__ import annotations

import pytest

from rnn_tui.api import LogLine, LogStream
from rnn_tui.tui.widgets.logs.buffer import LogBuffer, LogFormat, format_line

pytestmark = pytest.mark.tui


def line(i: int, job: str = "a", stream: LogStream = LogStream.STDOUT) -> LogLine:
    return LogLine("r", job, stream, f"line {i}", 1_790_000_000.0 + i)


def test_history_is_bounded_and_drops_are_counted() -> None:
    buf = LogBuffer(max_lines=10, max_pending=100)
    buf.extend(line(i) for i in range(25))
    batch = buf.take_pending()
    assert len(batch) == 10 and batch[-1].text == "line 24"
    assert len(buf.history) == 10
    assert buf.dropped == 15


def test_pending_is_bounded_too() -> None:
    buf = LogBuffer(max_lines=1000, max_pending=5)
    buf.extend(line(i) for i in range(8))
    assert buf.pending_count == 5 and buf.dropped == 3
    assert [ln.text for ln in buf.take_pending()] == [f"line {i}" for i in range(3, 8)]


def test_take_pending_respects_limit() -> None:
    buf = LogBuffer()
    buf.extend(line(i) for i in range(10))
    assert len(buf.take_pending(4)) == 4
    assert buf.pending_count == 6


def test_format_prefix_stream_tag_timestamp_and_wrap() -> None:
    ln = LogLine("r", "model", LogStream.STDERR, "x" * 50, 1_790_000_000.25)
    assert format_line(ln, LogFormat()) == ["model    ERR│ " + "x" * 50]
    assert format_line(ln, LogFormat(job_prefix=False)) == ["ERR│ " + "x" * 50]
    stamped = format_line(ln, LogFormat(timestamps=True, job_prefix=False))[0]
    assert stamped.startswith("14:13:20.250 ERR│")
    wrapped = format_line(ln, LogFormat(wrap_width=34))
    assert len(wrapped) == 3 and all(len(w) <= 34 for w in wrapped)
    assert all("ERR│" in w for w in wrapped)


def test_filter_matches_text_and_job_case_insensitively() -> None:
    buf = LogBuffer()
    buf.extend([line(1, "fetch"), LogLine("r", "clean", LogStream.LOGS, "Warning: X", 0.0)])
    buf.take_pending()
    assert [ln.job for ln in buf.matching("warning")] == ["clean"]
    assert [ln.job for ln in buf.matching("FETCH")] == ["fetch"]
    assert len(buf.matching("")) == 2
