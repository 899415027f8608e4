"""``OutputSink.view()``: what a live view may show while a step runs (issue 16 item 1), attacked.

A runner may write any pieces (ssh pumps chunks, not lines): a secret split across writes, and across the
moments a view is taken, must never be shown in part; every view is a prefix of the next and of the stored
text, so appending what a view newly shows builds exactly the stored output.
"""

from __future__ import annotations

import base64
import secrets
import textwrap

import pytest

from core.actions.context import MAX_OUTPUT_BYTES, OutputSink
from tests.maskers import tracked_masker

SECRET = "Sx" + secrets.token_hex(12)


def _sink(*values: str) -> OutputSink:
    return OutputSink(tracked_masker(*values))


def _views_while_writing(sink: OutputSink, pieces: list[str]) -> list[str]:
    views = []
    for piece in pieces:
        sink.write(piece)
        views.append(sink.view())
    return views


def _assert_prefixes(views: list[str], final: str) -> None:
    for earlier, later in zip(views, [*views[1:], final], strict=True):
        assert later.startswith(earlier), (earlier, later)


@pytest.mark.parametrize("cut", range(1, len(SECRET)))
def test_a_secret_split_anywhere_across_writes_is_never_shown_in_part(cut: int) -> None:
    sink = _sink(SECRET)
    pieces = ["before\n", "x " + SECRET[:cut], SECRET[cut:] + " y\n", "after\n"]
    views = _views_while_writing(sink, pieces)
    final = sink.text()
    assert final == "before\nx *** y\nafter\n"
    for view in views:  # no piece long enough to tell (a 3-character piece is in ordinary words too)
        assert all(piece not in view for piece in (SECRET[:cut], SECRET[cut:]) if len(piece) >= 4), view
    _assert_prefixes(views, final)


def test_a_partial_line_is_held_until_it_ends() -> None:
    sink = _sink(SECRET)
    sink.write("one\ntwo " + SECRET[:6])
    assert sink.view() == "one\n"
    sink.write(SECRET[6:] + "\n")
    assert sink.view() == "one\ntwo ***\n"


def test_a_key_word_at_the_end_of_a_line_waits_for_the_next() -> None:
    """``password:`` then a newline: the pattern takes the next line as its value, so both wait."""
    sink = _sink()
    views = _views_while_writing(sink, ["ok\npassword:\n", "  ", "hunter2value\n", "next\n"])
    assert views[0] == "ok\n" and views[1] == "ok\n"
    assert "hunter2" not in "".join(views)
    _assert_prefixes(views, sink.text())
    assert sink.text() == "ok\n***\nnext\n"


def test_wrapped_base64_printed_line_by_line_is_masked_in_each_view() -> None:
    value = "Kq" + secrets.token_hex(50)
    lines = textwrap.wrap(base64.b64encode(value.encode()).decode(), 76)
    sink = _sink(value)
    views = _views_while_writing(sink, [line + "\n" for line in lines])
    assert all(not any(line in view for line in lines) for view in views)
    _assert_prefixes(views, sink.text())


def test_a_line_longer_than_the_margin_is_shown_up_to_the_margin() -> None:
    sink = _sink(SECRET)
    sink.write("a" * 3000 + SECRET[:5])
    shown = sink.view()
    assert 0 < len(shown) <= 3005 - sink._masker.margin
    sink.write(SECRET[5:] + "\n")
    assert sink.text().startswith(shown) and sink.text().endswith("***\n")


def test_the_view_is_capped_like_the_stored_text() -> None:
    sink = _sink()
    for _ in range(40):
        sink.write("z" * 1023 + "\n")
    view = sink.view()
    assert len(view.encode()) <= MAX_OUTPUT_BYTES
    assert sink.text().startswith(view)


def test_a_key_word_and_a_long_run_of_blanks_does_not_stall_the_view() -> None:
    """The held-back rule is a regular expression over what the step printed: no polynomial backtracking."""
    import time

    sink = _sink()
    sink.write("token" + " " * 20_000 + ": \n" + "password " * 500 + "\n")
    started = time.process_time()
    sink.view()
    assert time.process_time() - started < 0.5
