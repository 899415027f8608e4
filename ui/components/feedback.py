"""The one seam between pages and core errors, plus success messages that survive a rerun.

A ``CoreError`` is the user's business and is shown as is (as text: its message quotes user input); anything
else is a bug: it is logged with a short reference id and the page shows only that id, never the traceback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import streamlit as st

from core import CoreError, InvalidInput
from ui import state
from ui.components.plain import md_text

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def attempt(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Run ``call``; on failure show the error and return None."""
    try:
        return call(*args, **kwargs)
    except InvalidInput as exc:
        st.error(_issues(exc))
    except CoreError as exc:
        st.error(md_text(exc))
    except Exception:
        ref = uuid.uuid4().hex[:8].upper()
        log.exception("console: unexpected error (ref %s) in %s", ref, getattr(call, "__qualname__", call))
        st.error(f"Something went wrong (ref {ref}). The details are in the server log.")
    return None


def quietly(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Run ``call``; None on a ``CoreError``, shown nowhere: for a call whose errors another call on the page
    shows (the Submit page's input form, whose declaration errors its preview reports)."""
    try:
        return call(*args, **kwargs)
    except CoreError:
        return None


def succeeded(call: Callable[P, object], /, *args: P.args, **kwargs: P.kwargs) -> bool:
    """Run ``call`` (one that returns nothing useful); True if it worked, else the error is shown."""
    done = object()

    def run() -> object:
        call(*args, **kwargs)
        return done

    return attempt(run) is done


def _issues(exc: InvalidInput) -> str:
    if len(exc.issues) <= 1:
        return md_text(exc)
    lines = [
        f"- {md_text(path)}: {md_text(message)}" if path else f"- {md_text(message)}" for path, message in exc.issues
    ]
    return "The input has problems:\n" + "\n".join(lines)


def succeed(message: str, *, after_rerun: bool = False) -> None:
    """Confirm an action: now, or (``after_rerun``) at the top of the page once it has re-rendered.

    ``message`` is text (it names plans, users, assets): it is shown literally, never as markdown.
    """
    if after_rerun:
        state.add_notice(message, keep_s=state.NOTICE_S)
        return
    st.success(md_text(message))
    st.toast(md_text(message))


def show_notices() -> None:
    """Show the confirmations queued before the last rerun."""
    for message in state.take_notices():
        st.success(md_text(message))
