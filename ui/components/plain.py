"""User text in the console is text (issue 13 item 4): never markdown, never HTML.

Plan names and descriptions, step names, errors, output, comments, runbook, asset and user names are typed by
someone else than the reader. Rendered as markdown, ``**Approval level: 0 (safe)**`` turns bold and
``![x](http://evil/x.png)`` loads an image in the approver's browser. Prefer a widget that takes text
(``st.text``, ``st.code``, a dataframe cell); where Streamlit only takes markdown (alerts, captions,
headings, and every label: expanders, buttons, tabs, metrics), pass the user's part through ``md_text``.
Never ``unsafe_allow_html`` with user text.
"""

from __future__ import annotations

import re

# Every ASCII punctuation character: CommonMark lets each be backslash-escaped, which makes it literal. That
# covers emphasis, code, links and images, HTML and entities (``<``, ``&``), headings, lists, tables, GFM
# strikethrough and autolinks (``http:``, ``www.``), and Streamlit's own syntax: ``$`` math and
# ``:color[…]`` directives.
_MARKUP = re.compile(r"([!-/:-@\[-`{-~])")


def md_text(text: object) -> str:
    """``text`` as markdown that renders exactly as ``text``: every markup character escaped.

    Line breaks stay line breaks (markdown would join the lines of an error into one).
    """
    value = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return "  \n".join(_MARKUP.sub(r"\\\1", value).split("\n"))


# Controls but tab and newline, DEL, C1, and the bidi marks, embeddings, overrides and isolates: in a code block
# they reorder or hide what the approver reads (``rm`` shown as ``mr``), so they are shown escaped (``\u202e``).
_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_HIDDEN_OR_BREAK = re.compile(r"[\t\n\r\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: object, *, one_line: bool = False) -> str:
    """``text`` for ``st.code``/``st.text``: every character that reorders or hides text escaped; ``one_line``:
    line breaks too (a step name must not pass for a line of params or a dry run)."""
    pattern = _HIDDEN_OR_BREAK if one_line else _HIDDEN
    return pattern.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(text))
