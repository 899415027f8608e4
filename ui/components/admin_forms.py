"""The Admin page's editors. Each form calls one core use case; core validates, checks the admin role
and audits. Secret values go in and never come out: the field is cleared after saving."""

from __future__ import annotations

import shlex

import streamlit as st

import core
from core import Principal
from ui import state
from ui.components.feedback import attempt, succeed, succeeded
from ui.components.plain import md_text

POLICY_FIELDS = ("step_s", "execution_s", "lease_s", "approval_s", "max_attempts")
MODES = [m.value for m in core.TenantMode]
ROLES = [r.value for r in core.Role]
CLASS_LIMITS = ["", *(c.value for c in core.ActionClass)]


def policy_editor(who: Principal, policies: list[core.PolicyView]) -> None:
    """Pick one row of the 3×3 matrix and change its limits (seconds; attempts)."""
    rows = {f"{p.sla_class} / {p.action_class}": p for p in policies}
    if not rows:
        return
    label = st.selectbox("Policy row", list(rows), key=state.ADMIN_POLICY_PICK)
    row = rows[label]
    with st.form(f"policy_form.{label}"):
        columns = st.columns(len(POLICY_FIELDS))
        values = {
            field: column.number_input(
                field, value=int(getattr(row, field)), step=1, key=f"{state.ADMIN_POLICY_FIELD}.{label}.{field}"
            )
            for column, field in zip(columns, POLICY_FIELDS, strict=True)
        }
        if st.form_submit_button("Save policy", type="primary"):
            new = core.PolicyValues(**{k: int(v) for k, v in values.items()})
            sla, cls = core.SlaClass(row.sla_class), core.ActionClass(row.action_class)
            if attempt(core.update_policy, who, sla, cls, new) is not None:
                succeed(f"Policy {label} saved.", after_rerun=True)
                st.rerun()


def tenant_mode_editor(who: Principal, current: core.TenantSettingsView) -> None:
    """The dark-launch switch: off / dry_run / live, the highest live approval level, and what happens above it."""
    with st.form("tenant_mode_form"):
        mode = st.radio("Mode", MODES, index=MODES.index(current.mode), horizontal=True, key=state.ADMIN_MODE)
        level = st.slider(
            "Highest approval level that runs live", 0, 3, current.max_live_level, key=state.ADMIN_MAX_LEVEL
        )
        behaviours = [b.value for b in core.OverLevelBehaviour]
        over = st.radio(
            "Above that level",
            behaviours,
            index=behaviours.index(current.over_level),
            horizontal=True,
            key=state.ADMIN_OVER_LEVEL,
            help="dry_run: run it as a dry run; refuse: refuse the submission with the reason.",
        )
        if st.form_submit_button("Save mode", type="primary"):
            done = attempt(
                core.set_tenant_mode,
                who,
                core.TenantMode(mode),
                max_live_level=int(level),
                over_level=core.OverLevelBehaviour(over),
            )
            if done is not None:
                succeed(f"{done.tenant}: {done.mode}, live up to level {done.max_live_level}.", after_rerun=True)
                st.rerun()


def priority_cap_editor(who: Principal, current: core.TenantSettingsView) -> None:
    """The tenant's cap on a plan's requested ``priority:`` (0 up to the plan field's bound)."""
    with st.form("priority_cap_form"):
        st.caption(
            f"Plans of this tenant may now request priority 0 to {current.max_priority}; a plan above the cap is "
            "refused at submit. Plans already submitted keep theirs."
        )
        cap = st.number_input(
            "Priority cap",
            min_value=0,
            max_value=core.MAX_PRIORITY,
            value=current.max_priority,
            step=1,
            key=state.ADMIN_PRIORITY_CAP,
        )
        if st.form_submit_button("Save priority cap", type="primary"):
            done = attempt(core.set_priority_cap, who, int(cap))
            if done is not None:
                said = (
                    f"{done.tenant}: plans may request priority up to {done.max_priority} (was {current.max_priority})."
                )
                succeed(said, after_rerun=True)
                st.rerun()


def member_editor(who: Principal) -> None:
    """Give a user a role (creating the user), limit an operator's action class, set a password, remove."""
    with st.form("member_form"):
        name = st.text_input("Username", key=state.ADMIN_MEMBER_NAME)
        role_col, limit_col = st.columns(2)
        role = role_col.selectbox("Role", ROLES, index=1, key=state.ADMIN_MEMBER_ROLE)
        limit = limit_col.selectbox("Limit to action class", CLASS_LIMITS, key=state.ADMIN_MEMBER_LIMIT)
        password = st.text_input("New password (optional)", type="password", key=state.ADMIN_MEMBER_PASSWORD)
        save_col, remove_col = st.columns(2)
        save = save_col.form_submit_button("Save member", type="primary")
        remove = remove_col.form_submit_button("Remove member")
    name = name.strip().lower()
    if (save or remove) and not name:
        st.error("Enter a username.")
    elif save:
        limit_class = core.ActionClass(limit) if limit else None
        member = attempt(core.set_member, who, name, core.Role(role), max_action_class=limit_class)
        if member is not None and (not password or succeeded(core.set_password, who, name, password)):
            succeed(f"{name} is {member.role}" + (" with a new password." if password else "."), after_rerun=True)
            st.rerun()
    elif remove and succeeded(core.remove_member, who, name):
        succeed(f"{name} no longer has a role in {who.tenant}.", after_rerun=True)
        st.rerun()


def secret_editor(who: Principal) -> None:
    """Set or rotate a secret (write-only: the value is never displayed), or delete one."""
    with st.form("secret_form", clear_on_submit=True):
        name = st.text_input("Secret name", key=state.ADMIN_SECRET_NAME)
        value = st.text_input("Value (write-only)", type="password", key=state.ADMIN_SECRET_VALUE)
        save_col, delete_col = st.columns(2)
        save = save_col.form_submit_button("Set / rotate", type="primary")
        delete = delete_col.form_submit_button("Delete secret")
    name = name.strip()
    if save and (info := attempt(core.set_secret, who, name, value)) is not None:
        succeed(f"Secret {info.name} is now at version {info.version}.", after_rerun=True)
        st.rerun()
    elif delete and succeeded(core.delete_secret, who, name):
        succeed(f"Secret {name} deleted.", after_rerun=True)
        st.rerun()


def asset_editor(who: Principal) -> None:
    """Add an asset to the inventory, or remove one that no execution uses."""
    key = state.ADMIN_ASSET_FIELD
    with st.form("asset_form"):
        name_col, kind_col = st.columns(2)
        name = name_col.text_input("Name", key=f"{key}.name")
        connection = kind_col.selectbox("Connection", [c.value for c in core.Connection], key=f"{key}.connection")
        host_col, port_col, url_col = st.columns([2, 1, 3])
        host = host_col.text_input("Host (ssh)", key=f"{key}.host")
        port = port_col.number_input("Port", value=None, step=1, key=f"{key}.port")
        base_url = url_col.text_input("Base URL (http)", key=f"{key}.base_url")
        credential = st.text_input("Credential (secret name)", key=f"{key}.credential")
        host_key = st.text_input("Known host key (ssh: 'ssh-ed25519 AAAA…')", key=f"{key}.host_key")
        skip_key = st.checkbox("Labs only: connect without a known host key", key=f"{key}.skip_host_key")
        tags = st.text_input("Tags (comma-separated)", key=f"{key}.tags")
        add_col, remove_col = st.columns(2)
        add = add_col.form_submit_button("Add asset", type="primary")
        remove = remove_col.form_submit_button("Remove asset")
    if add:
        added = attempt(
            core.add_asset,
            who,
            name.strip(),
            core.Connection(connection),
            host=host.strip() or None,
            port=int(port) if port is not None else None,
            base_url=base_url.strip() or None,
            tags=[t.strip() for t in tags.split(",") if t.strip()],
            credential_ref=credential.strip() or None,
            known_host_key=host_key.strip() or None,
            skip_host_key=skip_key,
        )
        if added is not None:
            succeed(f"Asset {added.name} added.", after_rerun=True)
            st.rerun()
    elif remove and succeeded(core.remove_asset, who, name.strip()):
        succeed(f"Asset {name.strip()} removed.", after_rerun=True)
        st.rerun()


def read_only_editor(who: Principal, commands: list[core.ReadOnlyCommandView]) -> None:
    """Declare an argv prefix read-only (typed like a command line, stored as its words), or withdraw one."""
    with st.form("read_only_form", clear_on_submit=True):
        text = st.text_input("Read-only prefix (e.g. `systemctl status`)", key=state.ADMIN_READ_ONLY_ARGV)
        if st.form_submit_button("Declare read-only", type="primary"):
            try:
                words = shlex.split(text)
            except ValueError as exc:
                st.error(md_text(f"Not a command line: {exc}."))
            else:
                if (added := attempt(core.add_read_only_command, who, words)) is not None:
                    succeed(f"Read-only: {shlex.join(added.argv)}.", after_rerun=True)
                    st.rerun()
    by_label = {shlex.join(c.argv): c for c in commands}
    if not by_label:
        return
    pick_col, button_col = st.columns([3, 1])
    label = pick_col.selectbox("Withdraw a prefix", list(by_label), key=state.ADMIN_READ_ONLY_PICK)
    if button_col.button("Withdraw") and succeeded(core.remove_read_only_command, who, by_label[label].id):
        succeed(f"No longer read-only: {label}.", after_rerun=True)
        st.rerun()


def runbook_publisher(who: Principal, runbooks: list[core.RunbookView]) -> None:
    """Publish a runbook's current text (its steps then run as `read` unless they ask for more), or withdraw."""
    if not runbooks:
        return
    by_name = {r.name: r for r in runbooks}
    pick_col, publish_col, withdraw_col = st.columns([3, 1, 1])
    name = pick_col.selectbox("Runbook", list(by_name), key=state.ADMIN_RUNBOOK_PICK)
    with st.expander("Its text (what publishing vouches for)"):
        st.code(by_name[name].plan_text, language="yaml")
    # The hash of the text shown: a runbook saved again meanwhile is refused, not published unseen.
    reviewed = by_name[name].text_hash
    if (
        publish_col.button("Publish")
        and (done := attempt(core.publish_runbook, who, name, reviewed_hash=reviewed)) is not None
    ):
        succeed(f"Runbook {done.name} is published.", after_rerun=True)
        st.rerun()
    if withdraw_col.button("Unpublish") and (done := attempt(core.unpublish_runbook, who, name)) is not None:
        succeed(f"Runbook {done.name} is no longer published.", after_rerun=True)
        st.rerun()


def readiness_report(items: list[core.CheckItem]) -> None:
    """The GO/NO-GO verdict and each item with its reason."""
    if not items:
        return
    failing = [item for item in items if not item.ok]
    if failing:
        st.error(md_text(f"NO-GO: {len(failing)} of {len(items)} items fail ({', '.join(i.name for i in failing)})."))
    else:
        st.success(f"GO: all {len(items)} items pass.")
    rows = [{"item": i.name, "verdict": "GO" if i.ok else "NO-GO", "reason": i.reason} for i in items]
    st.dataframe(rows, hide_index=True, width="stretch")
