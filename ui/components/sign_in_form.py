"""The sign-in form: a local account's password, or the identity provider (OIDC, ``st.login``) when configured.

Shown by the sign-in page, and by the router in place of any page opened while signed out, so that the address
(``/executions?execution=...``) stays and opens once signed in. With the demo data installed, it lists the demo
accounts and their shared password.
"""

from __future__ import annotations

import streamlit as st

import core
from ui import state
from ui.components import session
from ui.components.feedback import attempt, show_notices
from ui.components.layout import signed_out_style
from ui.components.sso import sso_configured, sso_username


def sign_in(username: str, password: str, tenant: str | None) -> None:
    """Check the password and, if right, sign in and reload the navigation for the user's role."""
    if not username or not password:
        st.error("Enter your username and password.")
    elif (who := attempt(core.authenticate, username, password, tenant)) is not None and session.begin(who):
        st.rerun()


def render() -> None:
    """The form, the single sign-on button (when configured) and the demo accounts (when installed)."""
    st.title("Sign in")
    signed_out_style()
    show_notices()
    if sso_configured():
        # Signed in at the identity provider: the local account of that name decides the role.
        sso_user = sso_username()
        if (
            sso_user is not None
            and (who := attempt(core.sso_principal, sso_user, None)) is not None
            and session.begin(who)
        ):
            st.rerun()
        st.button("Sign in with single sign-on", key=state.SSO_BUTTON, on_click=st.login, icon=":material/key:")
        st.divider()

    with st.form("sign_in_form"):
        username = st.text_input("Username", key=state.SIGN_IN_USERNAME)
        password = st.text_input("Password", type="password", key=state.SIGN_IN_PASSWORD)
        tenant = st.text_input("Tenant", key=state.SIGN_IN_TENANT, help="Needed only when the user belongs to several.")
        if st.form_submit_button("Sign in", type="primary"):
            sign_in(username.strip(), password, tenant.strip() or None)

    if core.demo_installed():
        st.subheader("Demo accounts")
        st.caption(f"Created by `opsconductor init --demo`; each signs in with the password `{core.DEMO_PASSWORD}`.")
        for tenant_name, users in core.DEMO_USERS.items():
            st.markdown(f"**{tenant_name}**")
            for column, (name, role) in zip(st.columns(len(users)), users.items(), strict=True):
                key = f"{state.DEMO_BUTTON}.{tenant_name}.{name}"
                if column.button(f"{name} · {role.value}", key=key, width="stretch"):
                    sign_in(name, core.DEMO_PASSWORD, tenant_name)
