"""Single sign-on through Streamlit's OIDC support (``st.login``), when ``[auth]`` is in secrets.toml.

The identity provider proves who the user is; the local account of the same name (the
``preferred_username`` claim, or the part of the e-mail address before the '@') decides the tenant
and role. There is no automatic provisioning: an admin adds the user first.
"""

from __future__ import annotations

import streamlit as st


def sso_configured() -> bool:
    """True if an identity provider is configured in the app's secrets."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001  no secrets file at all: Streamlit raises its own not-found error
        return False


def sso_username() -> str | None:
    """The local username of the user signed in at the identity provider, or None."""
    if not st.user.get("is_logged_in"):
        return None
    claimed = st.user.get("preferred_username") or str(st.user.get("email") or "").split("@")[0]
    return str(claimed).strip().lower() or None
