"""Sign in (demo/development): pick a user by name; no passwords yet (local accounts and OIDC come later)."""

from __future__ import annotations

import streamlit as st

import core
from core.setup import DEMO_USERS
from ui import state
from ui.components.feedback import attempt


def sign_in(username: str, tenant: str | None) -> None:
    """Resolve the principal and, if it exists, sign in and reload the navigation for its role."""
    if not username:
        st.error("Enter a username.")
    elif (who := attempt(core.principal, username, tenant)) is not None:
        state.sign_in(who)
        st.rerun()


st.title("Sign in")
st.warning("Demo sign-in: pick a user; password sign-in comes later.", icon=":material/science:")
with st.form("sign_in_form"):
    username = st.text_input("Username", key=state.SIGN_IN_USERNAME)
    tenant = st.text_input("Tenant", key=state.SIGN_IN_TENANT, help="Needed only when the user belongs to several.")
    if st.form_submit_button("Sign in", type="primary"):
        sign_in(username.strip(), tenant.strip() or None)

st.subheader("Demo accounts")
st.caption("Created by `opsconductor init --demo`.")
for tenant_name, users in DEMO_USERS.items():
    st.markdown(f"**{tenant_name}**")
    for column, (name, role) in zip(st.columns(len(users)), users.items(), strict=True):
        if column.button(f"{name} · {role.value}", key=f"{state.DEMO_BUTTON}.{tenant_name}.{name}", width="stretch"):
            sign_in(name, tenant_name)
