"""The Admin page's Notifications tab: the tenant's webhooks and email addresses (core/notify). A webhook URL is
shown by its host only; the signing secret only right after it is made or rotated, never again."""

from __future__ import annotations

import streamlit as st

import core
from core import Principal
from ui import state
from ui.components.feedback import attempt, succeed, succeeded
from ui.components.tables import views_table

KINDS = ["webhook", "email"]
FORMATS = ["json", "slack"]
EVENTS = ["approval_waiting", "dlq", "finished"]


def notification_channels(who: Principal) -> None:
    """The channels, a form to add one, and per channel: send a test, remove; rotate the signing secret."""
    key = state.ADMIN_NOTIFY_FIELD
    channels = attempt(core.list_channels, who) or []
    views_table(channels, ["id", "kind", "target", "format", "events", "owner", "created_at"], empty="No channels.")
    with st.form("notify_form"):  # kept on an error, so a typo is fixed, not retyped
        kind_col, format_col = st.columns(2)
        kind = kind_col.selectbox("Kind", KINDS, key=f"{key}.kind")
        fmt = format_col.selectbox("Webhook body", FORMATS, key=f"{key}.format")
        target = st.text_input("Webhook URL or email address", key=f"{key}.target")
        events = st.multiselect("Events", EVENTS, default=EVENTS[:2], key=f"{key}.events")
        add = st.form_submit_button("Add channel", type="primary")
    if add:
        if kind == "webhook":
            added = attempt(core.add_webhook, who, target, fmt=fmt, events=events)
            if added is not None:
                view, made = added
                if made is None:
                    succeed(f"Webhook {view.target} added.", after_rerun=True)
                    st.rerun()
                st.success(f"Webhook {view.target} added.")
                _show_secret(made)
        elif (view := attempt(core.add_email, who, target, events=events)) is not None:
            succeed(f"Email {view.target} added.", after_rerun=True)
            st.rerun()
    if not channels:
        return
    labels = {f"{c.kind} {c.target} ({c.id[:8]})": c.id for c in channels}
    pick = st.selectbox("Channel", list(labels), key=f"{key}.pick")
    test_col, remove_col, rotate_col = st.columns(3)
    if test_col.button("Send a test", key=f"{key}.test") and (result := attempt(core.test_channel, who, labels[pick])):
        (st.success if result.delivered else st.warning)(
            f"{'Delivered' if result.delivered else 'Not delivered'}: {result.detail}"
        )
    if remove_col.button("Remove channel", key=f"{key}.remove") and succeeded(core.remove_channel, who, labels[pick]):
        succeed(f"Channel {pick} removed.", after_rerun=True)
        st.rerun()
    if rotate_col.button("Rotate signing secret", key=f"{key}.rotate") and (
        secret := attempt(core.rotate_signing_secret, who)
    ):
        _show_secret(secret)


def _show_secret(secret: str) -> None:
    st.warning("The tenant's webhook signing secret, shown this once: give it to your receivers now.")
    st.code(secret, language=None)
