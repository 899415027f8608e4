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

from ui.visible_text import visible

__all__ = ["md_text", "visible"]

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
