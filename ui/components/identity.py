"""Who is signed in: the sidebar badge with its Sign out button, and the guard every signed-in page starts with."""

from __future__ import annotations

import streamlit as st

from core import Principal
from ui import state
from ui.components import session
from ui.components.plain import md_text


def signed_in() -> Principal:
    """The signed-in principal, shown in the sidebar with a Sign out button; stops the page if there is none."""
    who = state.principal()
    if who is None:
        # The router lists only the sign-in page then; this guards a page opened some other way.
        st.warning("Please sign in first.")
        st.stop()
    with st.sidebar:
        st.markdown(f"**{md_text(who.username)}** · {who.role.value} in {md_text(who.tenant)}")
        st.button("Sign out", key=state.SIGN_OUT, on_click=session.sign_out, icon=":material/logout:")
    return who
