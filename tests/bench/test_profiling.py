"""Summaries of py-spy's collapsed stacks."""

from __future__ import annotations

from velocity_bench.profiling import Profile, profile_markdown, summarize_collapsed

COLLAPSED = """\
process 1:"velocity-engine";main (cli.py:10);data_received (connection.py:100);feed (frame.py:7) 6
process 1:"velocity-engine";main (cli.py:10);data_received (connection.py:101);_send (connection.py:150) 3
process 1:"velocity-engine";main (cli.py:10) 1
not a sample line
"""


def test_self_and_inclusive_shares() -> None:
    prof = summarize_collapsed(COLLAPSED)
    assert prof.samples == 10
    assert prof.self_pct[0] == ("feed (frame.py)", 60.0)
    incl = dict(prof.inclusive_pct)
    # line numbers are dropped, so both data_received lines count as one function
    assert incl["data_received (connection.py)"] == 90.0
    assert incl["main (cli.py)"] == 100.0
    assert not any(k.startswith("process ") for k in incl)


def test_empty_input_gives_an_empty_profile() -> None:
    assert summarize_collapsed("").samples == 0


def test_markdown_names_every_run() -> None:
    md = profile_markdown({"velocity": {"P1-set": summarize_collapsed(COLLAPSED), "P16-get": Profile(error="boom")}})
    assert "## velocity P1-set" in md and "| 60.0 | `feed (frame.py)` |" in md
    assert "error: boom" in md
