"""The Dashboard page: the tiles reflect the tenant's executions (and only the tenant's), charts render,
and dry-run work is shown beside live."""

from __future__ import annotations

import core
from core.ops.setup import DEMO_RUNBOOKS
from tests.engine_support import drive
from tests.ui.conftest import MODIFY_PLAN, OpenConsole, submit

PAGE = "ui/pages/dashboard.py"
FAILING = next(plan for name, _d, plan in DEMO_RUNBOOKS if name == "Failing check")


def _tiles(at: object) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}  # type: ignore[attr-defined]


def test_tiles_count_successes_failures_and_the_dlq(console: OpenConsole) -> None:
    for i in range(3):
        drive(submit("alice", f"ok-{i}").execution_id)
    failed = core.submit(core.principal("alice", "demo"), FAILING).execution.execution_id
    core.approve(core.principal("bob", "demo"), failed)
    drive(failed)
    submit("alice", "waiting", MODIFY_PLAN)
    at = console("dave", page=PAGE)
    assert not at.exception and not at.error
    tiles = _tiles(at)
    assert tiles["Executions"] == "5"
    assert tiles["Success rate"] == "75%"
    assert tiles["DLQ open"] == "1"
    assert tiles["Approvals waiting"] == "1"
    assert tiles["live: executions"] == "5" and tiles["dry_run: executions"] == "0"
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the charts rendered


def test_dry_run_work_is_counted_apart(console: OpenConsole) -> None:
    core.set_tenant_mode(core.principal("admin", "demo"), core.TenantMode.DRY_RUN)
    drive(submit("alice", "rehearsal").execution_id)
    at = console("alice", page=PAGE)
    tiles = _tiles(at)
    assert tiles["dry_run: executions"] == "1" and tiles["live: executions"] == "0"


def test_another_tenant_sees_only_its_own(console: OpenConsole) -> None:
    drive(submit("alice", "ok").execution_id)
    at = console("mallory", tenant="globex", page=PAGE)
    assert _tiles(at)["Executions"] == "0"
    assert any("No executions in this window" in c.value for c in at.caption)


def test_failed_today_and_running_now_link_to_each_execution(console: OpenConsole) -> None:
    """Issue 16 item 7: the Dashboard lists what failed in the last 24 hours (and what runs), each a link to its
    detail; the tiles' links go only to pages the role has."""
    failed = core.submit(core.principal("alice", "demo"), FAILING).execution.execution_id
    core.approve(core.principal("bob", "demo"), failed)
    drive(failed)
    drive(submit("alice", "fine").execution_id)
    at = console("alice", page=PAGE)
    assert not at.exception
    labels = [link.label for link in at.get("page_link")]
    assert any(failed[:8] in label and "failed" in label for label in labels)
    assert "Nothing is running." in [c.value for c in at.caption]
    assert "Open the DLQ" in labels and "Open the inbox" not in labels  # alice is an operator
    viewer = console("dave", page=PAGE)
    assert not viewer.exception
    assert "Open the DLQ" not in [link.label for link in viewer.get("page_link")]


def test_the_by_status_chart_gives_every_status_its_own_colour() -> None:
    """One colour per status, the same everywhere; failed is red, not the palette's light blue."""
    from ui.components.status import COLOURS, OTHER, colour

    assert set(COLOURS) == {str(s) for s in core.ExecutionStatus}
    assert len(set(COLOURS.values())) == len(COLOURS) and OTHER not in COLOURS.values()
    assert colour("failed") == "#c62828" and colour("other") == OTHER
