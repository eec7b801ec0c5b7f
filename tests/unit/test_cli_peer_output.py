"""``rnn peer`` prints the punch history as a table (the JSON form is the API's)."""

from __future__ import annotations

from rnn_tui.commands.node import _print_punches


def test_punch_history_is_printed_newest_first_with_outcomes(capsys) -> None:  # type: ignore[no-untyped-def]
    _print_punches([
        {"peer": "x", "started": 1_700_000_100.0, "strategy": "birthday-easy",
         "outcome": "direct", "time_to_direct": 0.417, "attempts": 1,
         "remote": "203.0.113.9:4000", "error": ""},
        {"peer": "x", "started": 1_700_000_000.0, "strategy": "none", "outcome": "relayed",
         "time_to_direct": None, "attempts": 2, "remote": "", "error": "both symmetric"},
    ])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "punches:"
    assert "OUTCOME" in lines[1] and "TTD_MS" in lines[1]
    assert "direct" in lines[2] and "417" in lines[2] and "203.0.113.9:4000" in lines[2]
    assert "relayed" in lines[3] and "both symmetric" in lines[3] and "—" in lines[3]


def test_no_history_says_so(capsys) -> None:  # type: ignore[no-untyped-def]
    _print_punches([])
    assert capsys.readouterr().out.strip() == "punches: none recorded"
