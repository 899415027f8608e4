"""The console's few layout rules, as one style sheet every page gets (issue 16 item 7: nothing truncated at
1440×900, usable at 390 px wide). Only what Streamlit's own layout does not: each rule says why.

``st.html`` with only a ``<style>`` puts it in the page's event container, where it takes no room.
"""

from __future__ import annotations

import streamlit as st

CONSOLE_CSS = """
<style>
/* A metric tile ends a long value in "…" (the status "pending approval" in a quarter of the width): let it wrap
   at its spaces instead, and a little smaller, so the whole value is read. */
[data-testid="stMetricValue"] > div { white-space: normal; overflow-wrap: anywhere; line-height: 1.15; }
[data-testid="stMetricValue"] { font-size: clamp(1.35rem, 2.2vw, 2.25rem); }
/* A widget label is cut to one line; a long one ("Reason for cancelling (optional)") wraps instead. */
[data-testid="stWidgetLabel"] p { white-space: normal; }
</style>
"""
# The sign-in page never shows a toast: one raised just before Sign out would still be on screen for the next
# person at the keyboard (it names the last user's plans).
SIGNED_OUT_CSS = '<style>[data-testid="stToastContainer"] { display: none; }</style>'


def console_style() -> None:
    """The console's style sheet, for every page (streamlit_app.py)."""
    st.html(CONSOLE_CSS)


def signed_out_style() -> None:
    """What the sign-in form adds: no toast of whoever was signed in."""
    st.html(SIGNED_OUT_CSS)
