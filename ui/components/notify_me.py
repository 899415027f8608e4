"""Submit's "Notify me when it finishes" (issue 16 item 3): the per-submit opt-in, told at the requester's own
notification addresses; one without any gives an address here, subscribed for the executions they ask for."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

import core
from core import Principal
from ui import state
from ui.components.feedback import attempt
from ui.components.plain import md_text


@dataclass(frozen=True)
class NotifyChoice:
    """Whether to be told of the end, and the address to subscribe first (None: one is on file already)."""

    wanted: bool
    subscribe: str | None = None


def notify_me(who: Principal) -> NotifyChoice:
    """The checkbox, and where the notification goes (or a field for the address, when there is none yet)."""
    wanted = st.checkbox(
        "Notify me when it finishes",
        key=state.NOTIFY_ON_FINISH,
        help="An email when this execution ends, at your own notification address.",
    )
    if not wanted:
        return NotifyChoice(False)
    own = [c for c in attempt(core.list_channels, who) or [] if c.owner == who.username]
    if own:
        st.caption("To " + ", ".join(md_text(c.target) for c in own) + ".")
        return NotifyChoice(True)
    address = st.text_input(
        "Your email address",
        key=state.NOTIFY_ADDRESS,
        help="Subscribed for the executions you ask to hear of; remove it with `opsconductor notify remove`.",
    )
    return NotifyChoice(True, address.strip())


def subscribed(who: Principal, choice: NotifyChoice) -> bool:
    """Subscribe the address the choice names, if any; False (the error shown) when that failed."""
    if choice.subscribe is None:
        return True
    if not choice.subscribe:
        st.error("Give your email address to be notified, or clear Notify me when it finishes.")
        return False
    return attempt(core.subscribe_email, who, choice.subscribe, only_when_asked=True) is not None
