"""Admin (read-only for now): timeout policies, tenant mode, members, assets, and secret names (never values)."""

from __future__ import annotations

import streamlit as st

import core
from ui.components.feedback import attempt
from ui.components.identity import signed_in
from ui.components.tables import views_table

who = signed_in()
st.title(f"Admin · {who.tenant}")
policies, tenant, members, assets, secrets = st.tabs(["Timeout policies", "Tenant", "Members", "Assets", "Secrets"])
with policies:
    views_table(attempt(core.list_policies, who) or [])
with tenant:
    if (settings := attempt(core.get_tenant_settings, who)) is not None:
        views_table([settings])
with members:
    views_table(attempt(core.list_members, who) or [], empty="No members.")
with assets:
    views_table(attempt(core.list_assets, who) or [], empty="No assets.")
with secrets:
    st.caption("Names and versions only: values are never shown.")
    views_table(attempt(core.list_secrets, who) or [], empty="No secrets.")
