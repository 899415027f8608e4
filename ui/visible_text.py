"""User text made visible: the characters that hide, reorder or break it shown escaped, for every reader.

Controls but tab and newline, DEL, C1 (8-bit CSI among them), and the bidi marks, embeddings, overrides and
isolates: on a terminal they rewrite the screen (``ESC [2J``), in the console's code blocks they reorder what
the approver reads (``rm`` shown as ``mr``). Both the CLI (ui/cli/output.py) and the console
(ui/components/plain.py) show them escaped (``\\x1b``, ``\\u202e``), never raw.
"""

from __future__ import annotations

import re

_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_HIDDEN_OR_BREAK = re.compile(r"[\t\n\r\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text: object, *, one_line: bool = False) -> str:
    """``text`` with every character that hides or reorders text escaped; ``one_line``: line breaks and tabs
    too (a name must not pass for a line of its own)."""
    pattern = _HIDDEN_OR_BREAK if one_line else _HIDDEN
    return pattern.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(text))
