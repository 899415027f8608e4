"""Admin: the timeout policy matrix, the tenant's mode (dark launch) and priority cap, members, secrets, the
inventory, what runs without approval (read-only commands, published runbooks), notification channels, change
windows, and the trail of every change made here."""

from __future__ import annotations

import streamlit as st

import core
from ui import runtime, state
from ui.components import admin_forms as forms
from ui.components.feedback import attempt, show_notices
from ui.components.identity import signed_in
from ui.components.notify_form import notification_channels
from ui.components.plain import md_text
from ui.components.tables import views_table
from ui.components.windows_form import change_windows

who = signed_in()
st.title(f"Admin · {md_text(who.tenant)}")
show_notices()
readiness, policies, tenant, members, assets, secrets, risk, notify, windows, trail = st.tabs(
    [
        "GO/NO-GO",
        "Timeout policies",
        "Tenant",
        "Members",
        "Assets",
        "Secrets",
        "Risk",
        "Notifications",
        "Change windows",
        "Audit log",
    ]
)
with readiness:
    st.caption("The checks of `opsconductor check`: turn a tenant live only on GO (README: Dark launch).")
    if st.button("Run the check", key=state.ADMIN_CHECK, icon=":material/fact_check:"):
        forms.readiness_report(attempt(core.check_readiness, broker_probe=runtime.broker_ping) or [])
with policies:
    rows = attempt(core.list_policies, who) or []
    views_table(rows)
    forms.policy_editor(who, rows)
with tenant:
    if (settings := attempt(core.get_tenant_settings, who)) is not None:
        views_table([settings])
        forms.tenant_mode_editor(who, settings)
        forms.priority_cap_editor(who, settings)
with members:
    views_table(attempt(core.list_members, who) or [], empty="No members.")
    forms.member_editor(who)
with assets:
    views_table(attempt(core.list_assets, who) or [], empty="No assets.")
    forms.asset_editor(who)
with secrets:
    st.caption("Names and versions only: values are never shown.")
    views_table(attempt(core.list_secrets, who) or [], empty="No secrets.")
    forms.secret_editor(who)
with risk:
    st.caption(
        "A shell step is `modify` (needs approval) unless its argv starts with a read-only prefix, word for word, "
        "or it is a step of a published runbook. Editing a runbook ends its publication. The level shown is the "
        "one the server derives from a runbook's steps, whatever its description says."
    )
    commands = attempt(core.list_read_only_commands, who) or []
    views_table(commands, ["argv", "created_by", "created_at"], empty="No read-only commands.")
    forms.read_only_editor(who, commands)
    runbooks = attempt(core.list_runbooks, who) or []
    columns = ["name", "approval_level", "action_class", "published", "version", "owner", "updated_by", "published_by"]
    views_table(runbooks, columns, empty="No runbooks.")
    forms.runbook_publisher(who, runbooks)
with notify:
    st.caption(
        "Webhooks and email for approvals waiting, DLQ entries and ends (docs/operations.md: Notifications). "
        "Only ids, names, status, who and a link are sent; never a secret or step output."
    )
    notification_channels(who)
with windows:
    st.caption(
        "When modify and deploy plans may start: allowed windows and blackouts (a blackout wins), per tenant or per "
        "asset tag. Read plans and dry runs are never held."
    )
    change_windows(who)
with trail:
    st.caption("Every change to this tenant's setup, newest first (secrets by name and version only).")
    views_table(
        attempt(core.list_admin_events, who, limit=200) or [],
        ["created_at", "actor", "action", "subject", "data"],
        empty="No changes recorded yet.",
    )
