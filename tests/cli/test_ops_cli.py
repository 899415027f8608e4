"""The operations commands of the CLI: ``audit verify``, ``prune`` and ``check`` (exit codes, --json shapes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from core.engine.workers import register_worker
from db.clock import utcnow
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Execution, ExecutionEvent
from tests.cli.support import READ_PLAN, Cli, PlanFile, ok_json, submit_json


@pytest.fixture(autouse=True)
def _no_rollout_evidence_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    """``check``'s other items are under test here; a fresh database has no executions, which the rollout
    gates count as NO-GO by default (tests/integration/test_readiness.py covers that)."""
    monkeypatch.setenv("OPSC_CHECK_MIN_EXECUTIONS", "0")
    get_settings.cache_clear()


# audit verify -------------------------------------------------------------------------------------


def test_audit_verify_is_0_when_intact_and_5_naming_the_broken_link(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """An intact trail exits 0; after an event is edited, exit 5 names the execution and the event."""
    execution_id = submit_json(cli, plan_file(READ_PLAN))["execution_id"]
    intact = cli("audit", "verify", "--as", "admin", "--tenant", "demo")
    assert intact.exit_code == 0, intact.stderr
    assert "intact" in intact.stdout and "1 execution(s)" in intact.stdout
    with session_scope() as session:
        event_id = session.exec(
            select(ExecutionEvent.id)
            .where(ExecutionEvent.execution_id == execution_id)
            .order_by(col(ExecutionEvent.id))
        ).first()
        session.execute(update(ExecutionEvent).where(col(ExecutionEvent.id) == event_id).values(actor="mallory"))
    broken = cli("audit", "verify", execution_id, "--as", "admin")
    assert broken.exit_code == 5
    assert "BROKEN" in broken.stdout and f"execution {execution_id} event {event_id}: modified" in broken.stdout
    report = json.loads(cli("audit", "verify", execution_id, "--as", "admin", "--json").stdout)
    assert report["intact"] is False and report["execution_id"] == execution_id
    assert report["first_break"] == report["breaks"][0]
    assert {"execution_id", "event_id", "problem", "detail", "source", "seq"} == set(report["first_break"])


def test_audit_verify_needs_an_admin_and_a_known_id(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """An operator gets 3; an unknown id 4; no traceback either way."""
    execution_id = submit_json(cli, plan_file(READ_PLAN))["execution_id"]
    denied = cli("audit", "verify", execution_id, "--as", "alice")
    assert denied.exit_code == 3 and "Traceback" not in denied.output
    assert cli("audit", "verify", "0" * 32, "--as", "admin", "--tenant", "demo").exit_code == 4


def test_audit_checkpoint_public_key_and_export(db: str, cli: Cli, plan_file: PlanFile, tmp_path: Path) -> None:
    """``checkpoint`` signs the head; ``public-key`` prints the PEM the export's header carries; ``export``
    writes one JSON object per line (stdout or --output), links from --since-seq on, checkpoints last."""
    submit_json(cli, plan_file(READ_PLAN))
    signed = ok_json(cli("audit", "checkpoint", "--as", "admin", "--tenant", "demo", "--json"))["checkpoint"]
    assert signed["seq"] >= 1 and signed["signature"]
    pem = cli("audit", "public-key")
    assert pem.exit_code == 0 and pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    out = cli("audit", "export", "--as", "admin", "--tenant", "demo")
    assert out.exit_code == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["type"] == "header" and lines[0]["public_key"] == pem.stdout
    assert [line["type"] for line in lines[1:]] == ["link"] * signed["seq"] + ["checkpoint"]
    target = tmp_path / "audit.jsonl"
    since = cli("audit", "export", "--as", "admin", "--tenant", "demo", "--since-seq", "2", "--output", str(target))
    assert since.exit_code == 0 and since.stdout == ""
    shipped = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["seq"] for line in shipped if line["type"] == "link"] == list(range(3, signed["seq"] + 1))
    assert cli("audit", "export", "--as", "alice").exit_code == 3


# prune --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("age", ["30", "thirty days", "0d", "-5d", "3y"])
def test_prune_rejects_a_bad_duration_with_exit_2(sqlite_db: str, cli: Cli, age: str) -> None:
    """Anything but a positive whole number and a unit (s, m, h, d, w) is invalid input, said in one line."""
    result = cli("prune", "--older-than", age, "--as", "admin", "--tenant", "demo")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --older-than:") and "Traceback" not in result.output


def test_prune_dry_run_then_prune(db: str, cli: Cli, plan_file: PlanFile) -> None:
    """--dry-run --json reports counts and deletes nothing; the real run prunes them; operators get 3."""
    execution_id = submit_json(cli, plan_file(READ_PLAN))["execution_id"]
    with session_scope() as session:
        session.execute(update(Execution).where(col(Execution.id) == execution_id).values(finished_at=utcnow()))
    args = ("prune", "--older-than", "90m", "--as", "admin", "--tenant", "demo")
    assert ok_json(cli(*args, "--dry-run", "--json"))["executions"] == 0  # ended just now: kept
    with session_scope() as session:
        session.execute(update(Execution).values(finished_at=utcnow().replace(year=2000)))
    estimate = ok_json(cli(*args, "--dry-run", "--json"))
    assert estimate["dry_run"] is True and estimate["executions"] == 1 and estimate["events_deleted"] > 0
    assert set(estimate) == {
        "tenant",
        "cutoff",
        "dry_run",
        "executions",
        "events_deleted",
        "outputs_cleared",
        "batches",
    }
    done = cli(*args)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("pruned 1 execution(s)")
    assert cli("prune", "--older-than", "30d", "--as", "alice").exit_code == 3


# check --------------------------------------------------------------------------------------------


def test_check_is_1_and_names_each_no_go_item(db: str, cli: Cli) -> None:
    """With no worker running, check exits 1; --json lists every item with ok, status and reason."""
    assert cli("init", "--no-single-operator").exit_code == 0  # a production box: claimed names refused
    result = cli("check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["go"] is False
    items = {item["name"]: item for item in report["items"]}
    assert all(set(item) == {"name", "ok", "status", "reason"} for item in items.values())
    assert items["workers"]["status"] == "NO-GO" and items["workers"]["ok"] is False
    assert items["database"]["status"] == "GO" and items["broker"]["status"] == "GO"
    text = cli("check")
    assert text.exit_code == 1
    assert re.search(r"^NO-GO +workers +no worker is running", text.stdout, re.MULTILINE)
    assert text.stdout.rstrip().endswith("NO-GO: 1 of 15 item(s) failed")


def test_check_is_0_when_everything_is_go(db: str, cli: Cli) -> None:
    """With a fresh worker heartbeat on a healthy installation, check prints GO and exits 0."""
    register_worker("w-cli", kind="test", threads=1)
    assert cli("init", "--no-single-operator").exit_code == 0  # a production box: claimed names refused
    result = cli("check")
    assert result.exit_code == 0, result.stdout
    assert result.stdout.rstrip().endswith("GO") and "NO-GO" not in result.stdout


def test_check_says_no_go_while_claimed_names_are_accepted(sqlite_db: str, cli: Cli) -> None:
    """A demo box (claimed names, --as USER) is NO-GO for production, with the way out in the reason."""
    register_worker("w-cli", kind="test", threads=1)
    result = cli("check")
    assert result.exit_code == 1
    assert re.search(r"^NO-GO +identity +claimed names", result.stdout, re.MULTILINE)
    assert result.stdout.rstrip().endswith("NO-GO: 1 of 15 item(s) failed")


# audit admin --------------------------------------------------------------------------------------


def test_audit_admin_lists_the_tenants_changes_for_admins_only(db: str, cli: Cli) -> None:
    assert cli("tenant", "mode", "demo", "dry_run", "--as", "admin").exit_code == 0
    assert cli("secrets", "set", "api_token", "--as", "admin", "--tenant", "demo", input="hidden-9931\n").exit_code == 0
    shown = cli("audit", "admin", "--as", "admin", "--tenant", "demo")
    assert shown.exit_code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert " admin secret_set api_token " in lines[0] and " admin tenant_mode demo " in lines[1]
    assert "hidden-9931" not in shown.stdout
    events = json.loads(cli("audit", "admin", "--as", "admin", "--tenant", "demo", "--json").stdout)["events"]
    assert [e["action"] for e in events] == ["secret_set", "tenant_mode"]
    assert cli("audit", "admin", "--as", "alice").exit_code == 3
