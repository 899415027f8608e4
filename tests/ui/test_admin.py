"""The Admin page (read-only): policies, tenant settings, members, assets, secret names without values."""

from __future__ import annotations

from pathlib import Path

import pytest

import core
from core.engine.workers import register_worker
from core.identity.installation import set_claimed_identity
from core.transactions import session_scope
from tests.engine_support import drive
from tests.ui.conftest import OpenConsole, button, shown, texts
from ui import state

PAGE = "ui/pages/admin.py"


def test_admin_page_shows_policies_tenant_members_assets_and_secret_names(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    assert not at.exception
    assert not at.error
    policies, tenant, members, assets, secrets, *_risk = (frame.value for frame in at.dataframe)
    assert len(policies) == 9
    assert tenant["mode"].tolist() == ["live"]
    assert set(members["username"]) == {"alice", "bob", "carol", "dave", "admin"}
    assert assets["name"].tolist() == ["lab-1", "lab-2", "lab-3", "localhost"]
    assert secrets["name"].tolist() == ["demo_token"]


def test_admin_page_never_shows_a_secret_value(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    assert "s3cr3t" not in texts(at)


def test_admin_page_is_scoped_to_the_signed_in_tenant(console: OpenConsole) -> None:
    at = console("admin", tenant="globex", page=PAGE)
    assert not at.exception
    members = at.dataframe[2].value
    assert set(members["username"]) == {"mallory", "admin"}


def _policy(sla: str, cls: str) -> core.PolicyView:
    return next(
        p for p in core.list_policies(core.principal("admin", "demo")) if (p.sla_class, p.action_class) == (sla, cls)
    )


def test_a_policy_edit_is_saved(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    at.selectbox(key=state.ADMIN_POLICY_PICK).select("fast / modify").run()
    at.number_input(key=f"{state.ADMIN_POLICY_FIELD}.fast / modify.step_s").set_value(9)
    button(at, "Save policy").click().run()
    assert not at.exception and not at.error
    assert _policy("fast", "modify").step_s == 9


def test_a_bad_policy_value_is_refused_with_its_reason_and_nothing_changes(console: OpenConsole) -> None:
    before = _policy("fast", "read")
    at = console("admin", page=PAGE)
    at.number_input(key=f"{state.ADMIN_POLICY_FIELD}.fast / read.lease_s").set_value(1)
    button(at, "Save policy").click().run()
    assert not at.exception
    assert any("lease_s" in shown(e.value) and "at least step_s" in shown(e.value) for e in at.error)
    assert _policy("fast", "read") == before


def test_the_tenant_mode_is_switched_from_the_page(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    at.radio(key=state.ADMIN_MODE).set_value("dry_run")
    at.slider(key=state.ADMIN_MAX_LEVEL).set_value(1)
    button(at, "Save mode").click().run()
    assert not at.exception and not at.error
    settings = core.get_tenant_settings(core.principal("admin", "demo"))
    assert (settings.mode, settings.max_live_level) == ("dry_run", 1)


def test_the_priority_cap_shows_its_value_and_is_saved_with_a_confirmation(console: OpenConsole) -> None:
    """Admin → Tenant: the cap's current value is in the table and the field; saving confirms it with the old
    value after the rerun, submissions obey it at once, and the trail records it."""
    at = console("admin", page=PAGE)
    assert at.dataframe[1].value["max_priority"].tolist() == [3]
    field = at.number_input(key=state.ADMIN_PRIORITY_CAP)
    assert (field.value, field.max) == (3, core.MAX_PRIORITY)
    assert any("priority 0 to 3" in shown(c.value) for c in at.caption)
    field.set_value(6)
    button(at, "Save priority cap").click().run()
    assert not at.exception and not at.error
    assert [shown(s.value) for s in at.success] == ["demo: plans may request priority up to 6 (was 3)."]
    assert at.dataframe[1].value["max_priority"].tolist() == [6]
    assert at.number_input(key=state.ADMIN_PRIORITY_CAP).value == 6
    plan = "name: p\npriority: 6\nsteps:\n  - {name: s, action: noop, target: localhost}\n"
    assert core.submit(core.principal("alice", "demo"), plan, background=True).execution.priority == 8
    trail = core.list_admin_events(core.principal("admin", "demo"))
    assert [(e.action, e.data) for e in trail] == [("priority_cap", {"old": 3, "new": 6})]


def test_a_demoted_admin_cannot_save_the_priority_cap(console: OpenConsole) -> None:
    core.set_member(core.principal("admin", "demo"), "carol", core.Role.ADMIN)
    at = console("carol", page=PAGE)
    core.set_member(core.principal("admin", "demo"), "carol", core.Role.APPROVER)  # demoted meanwhile
    at.number_input(key=state.ADMIN_PRIORITY_CAP).set_value(9)
    button(at, "Save priority cap").click().run()
    assert not at.exception
    assert any("needs admin" in shown(e.value) for e in at.error)
    assert not at.success
    assert core.get_tenant_settings(core.principal("admin", "demo")).max_priority == 3


def test_members_get_roles_and_passwords(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    at.text_input(key=state.ADMIN_MEMBER_NAME).input("erin")
    at.selectbox(key=state.ADMIN_MEMBER_ROLE).select("approver")
    at.text_input(key=state.ADMIN_MEMBER_PASSWORD).input("erins-password")
    button(at, "Save member").click().run()
    assert not at.exception and not at.error
    assert core.authenticate("erin", "erins-password").role.value == "approver"


def test_a_secret_is_write_only(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    at.text_input(key=state.ADMIN_SECRET_NAME).input("api_key")
    at.text_input(key=state.ADMIN_SECRET_VALUE).input("value-nobody-sees-9431")
    button(at, "Set / rotate").click().run()
    assert not at.exception and not at.error
    assert "api_key" in at.dataframe[4].value["name"].tolist()
    assert "value-nobody-sees-9431" not in texts(at)


def test_an_asset_is_added_and_a_bad_one_refused(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    key = state.ADMIN_ASSET_FIELD
    at.text_input(key=f"{key}.name").input("web-01")
    at.selectbox(key=f"{key}.connection").select("ssh")
    button(at, "Add asset").click().run()
    assert any("host" in shown(e.value) for e in at.error)
    at.text_input(key=f"{key}.host").input("10.0.0.5")
    button(at, "Add asset").click().run()
    assert not at.exception
    assert "web-01" in [a.name for a in core.list_assets(core.principal("admin", "demo"))]


def test_non_admins_are_refused_by_core_even_if_they_reach_the_forms(console: OpenConsole) -> None:
    core.set_member(core.principal("admin", "demo"), "carol", core.Role.ADMIN)
    at = console("carol", page=PAGE)
    core.set_member(core.principal("admin", "demo"), "carol", core.Role.APPROVER)  # demoted meanwhile
    at.radio(key=state.ADMIN_MODE).set_value("off")
    button(at, "Save mode").click().run()
    assert not at.exception
    assert at.error
    assert core.get_tenant_settings(core.principal("admin", "demo")).mode == "live"


def test_the_audit_log_tab_shows_what_changed(console: OpenConsole) -> None:
    core.set_secret(core.principal("admin", "demo"), "api_key", "value-nobody-sees-5512")
    at = console("admin", page=PAGE)
    trail = at.dataframe[-1].value
    assert trail["action"].tolist() == ["secret_set"] and trail["subject"].tolist() == ["api_key"]
    assert "value-nobody-sees-5512" not in texts(at)


def test_the_go_no_go_panel_names_what_fails_and_turns_go(
    console: OpenConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSC_CHECK_MIN_EXECUTIONS", "0")  # a fresh database: no rollout evidence required
    core.get_settings.cache_clear()
    at = console("admin", page=PAGE)
    at.button(key=state.ADMIN_CHECK).click().run()
    assert not at.exception
    assert any(shown(e.value).startswith("NO-GO") and "workers" in shown(e.value) for e in at.error)
    register_worker("console-test-worker", kind="embedded", threads=1)
    with session_scope() as session:
        set_claimed_identity(session, False)  # a production box: the demo's claimed names are NO-GO
    at.button(key=state.ADMIN_CHECK).click().run()
    verdicts = dict(zip(at.dataframe[0].value["item"], at.dataframe[0].value["verdict"], strict=True))
    assert verdicts["workers"] == "GO"
    assert [shown(s.value) for s in at.success] == [f"GO: all {len(verdicts)} items pass."], verdicts


def test_a_tenant_goes_off_dry_run_live_0_then_live_3_from_the_page(console: OpenConsole, tmp_path: Path) -> None:
    """The dark-launch walk of the README, each stage checked by what a submission does."""
    marker = tmp_path / "touched"
    plan = f"name: t\nsteps:\n  - {{name: t, action: shell, target: localhost, params: {{command: [touch, '{marker}']}}}}\n"
    alice = core.principal("alice", "demo")
    # The walk needs a level-0 plan that changes something visible: an admin declares `touch` read-only.
    core.add_read_only_command(core.principal("admin", "demo"), ["touch"])

    def switch(mode: str, level: int) -> None:
        at = console("admin", page=PAGE)
        at.radio(key=state.ADMIN_MODE).set_value(mode)
        at.slider(key=state.ADMIN_MAX_LEVEL).set_value(level)
        button(at, "Save mode").click().run()
        assert not at.exception and not at.error

    switch("off", 0)
    with pytest.raises(core.SafetyRefused):
        core.submit(alice, plan)
    switch("dry_run", 0)
    done = core.submit(alice, plan).execution
    drive(done.execution_id)
    assert core.get_execution(alice, done.execution_id).run_mode == "dry_run" and not marker.exists()
    switch("live", 0)
    live = core.submit(alice, plan.replace("name: t\n", "name: t-live\n")).execution  # a new plan: not a duplicate
    drive(live.execution_id)
    assert core.get_execution(alice, live.execution_id).run_mode == "live" and marker.exists()
    deploy = plan.replace("name: t, action", "name: t, action_class: deploy, action")
    assert core.submit(alice, deploy).execution.run_mode == "dry_run"  # level 2 is above the live level
    switch("live", 3)
    assert core.submit(alice, deploy.replace("name: t\n", "name: t2\n")).execution.run_mode == "live"
    trail = core.list_admin_events(core.principal("admin", "demo"))
    modes = [e.data["mode"] for e in trail if e.action == "tenant_mode"]
    assert modes == ["live", "live", "dry_run", "off"]


def test_the_risk_tab_declares_and_withdraws_a_read_only_prefix(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    at.text_input(key=state.ADMIN_READ_ONLY_ARGV).input("systemctl status")
    button(at, "Declare read-only").click().run()
    assert not at.exception and not at.error
    admin = core.principal("admin", "demo")
    assert ["systemctl", "status"] in [c.argv for c in core.list_read_only_commands(admin)]
    at.selectbox(key=state.ADMIN_READ_ONLY_PICK).select("systemctl status").run()
    button(at, "Withdraw").click().run()
    assert not at.exception and not at.error
    assert ["systemctl", "status"] not in [c.argv for c in core.list_read_only_commands(admin)]


def test_the_risk_tab_publishes_a_runbook_for_admins_only(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    at.selectbox(key=state.ADMIN_RUNBOOK_PICK).select("Log rotation").run()
    button(at, "Publish").click().run()
    assert not at.exception and not at.error
    published = {r.name: r.published for r in core.list_runbooks(core.principal("alice", "demo"))}
    assert published["Log rotation"]
    core.set_member(core.principal("admin", "demo"), "carol", core.Role.ADMIN)
    at = console("carol", page=PAGE)
    core.set_member(core.principal("admin", "demo"), "carol", core.Role.APPROVER)  # demoted meanwhile
    at.selectbox(key=state.ADMIN_RUNBOOK_PICK).select("Log rotation").run()
    button(at, "Unpublish").click().run()
    assert not at.exception and at.error
    assert {r.name: r.published for r in core.list_runbooks(core.principal("alice", "demo"))}["Log rotation"]
