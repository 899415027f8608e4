"""The hashed plan as the approver reads it (DESIGN §13 "what the approver sees is what runs"), from any row source.

Each step's action, target, class, timeout and canonical params (secret references as written, never a
value), with its dry run, read from ``plan_json``: the text the approval's hash covers and the worker
executes from (core/engine/claim.py), never from the step rows' copies. No secret is read: the dry run
sees ``***`` for every reference (core/actions/describe.py, the one describer).

"Changed since the last approved run": executions do not record the runbook they came from, so the plan's
*name* within the tenant links runs (a runbook's plan keeps its name). The earlier execution compared with
is the newest one created before this one that passed approval (by people or, at level 0, by policy):
its status is ``approved`` or later (cancelled runs are left out, approved or not).

The rows come from a ``ReviewSource``: the ORM session (core/reads/plan_view.py) or the one-shot reader of
``show`` (core/reads/direct_sql.py, issue 15), so the review is assembled once. Must not import SQLAlchemy,
SQLModel or the tables.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.actions.describe import describe_step
from core.inventory.asset_view import asset_view
from core.plan_integrity import execution_differences, step_differences, verified_plan
from core.plan_phases import flat_steps, step_at
from core.policy_limits import effective_step_s
from core.rows import AssetRow, ExecutionRow, PolicyRow, StepRow
from core.schemas import AssetView, FanoutView, PlanStepView
from db.enums import ExecutionStatus, StepPhase

# Statuses an execution reaches only once approved (DESIGN §4).
APPROVED_STATUSES = [
    s.value
    for s in (
        ExecutionStatus.APPROVED,
        ExecutionStatus.QUEUED,
        ExecutionStatus.RUNNING,
        ExecutionStatus.COMPLETED,
        ExecutionStatus.FAILED,
        ExecutionStatus.PARTIAL,
        ExecutionStatus.TIMEOUT,
    )
]


class ReviewSource(Protocol):
    """The rows a review reads besides the executions and their steps. Every answer is tenant-scoped."""

    def last_approved(self, execution: ExecutionRow) -> ExecutionRow | None:
        """The newest execution of the same name in its tenant, created before it, in ``APPROVED_STATUSES``."""
        ...

    def assets(self, tenant_id: str, ids: Collection[str]) -> Sequence[AssetRow]:
        """The tenant's assets with these ids."""
        ...

    def policies(self) -> Sequence[PolicyRow]:
        """Every timeout policy row (shared by all tenants, DESIGN §6)."""
        ...


@dataclass(frozen=True)
class Review:
    """What an approval surface shows of one execution's plan.

    ``steps`` None: the stored plan does not match its hash (it cannot be shown as approved text).
    ``intact`` False: that, or the execution's or a step row's copies disagree with the plan.
    """

    steps: list[PlanStepView] | None
    intact: bool
    changes_since_approved: str | None = None
    compared_with: str | None = None
    execution_limit_s: int | None = None  # the current policy's, for the execution's classes
    inputs: dict[str, Any] | None = None  # the values the plan's declared inputs were bound with (DESIGN §14)


def review(
    source: ReviewSource,
    executions: Sequence[ExecutionRow],
    step_rows: Mapping[str, Sequence[StepRow]],
    *,
    compare: bool = True,
) -> dict[str, Review]:
    """The review of each execution (by id): rendered steps, intactness and, with ``compare``, the diff."""
    earlier = {e.id: source.last_approved(e) for e in executions} if compare else {}
    read = [*executions, *(p for p in earlier.values() if p is not None)]
    plans = {e.id: verified_plan(e) for e in read}
    assets = _assets(source, read, plans)
    policies = {(p.sla_class, p.action_class): p for p in source.policies()}
    found: dict[str, Review] = {}
    for execution in executions:
        plan = plans[execution.id]
        run_policy = policies.get((execution.sla_class, execution.action_class))
        limit_s = run_policy.execution_s if run_policy is not None else None
        if plan is None:
            found[execution.id] = Review(steps=None, intact=False, execution_limit_s=limit_s)
            continue
        steps = _with_limits(_render(plan, assets), execution.sla_class, policies)
        rows = step_rows.get(execution.id, ())
        intact = (
            not execution_differences(execution, plan)
            and len(rows) == len(flat_steps(plan))
            and not any(step_differences(_at(plan, row.step_index), row) for row in rows)
        )
        previous = earlier.get(execution.id)
        before = plans.get(previous.id) if previous is not None else None
        diff = _diff(previous, _render(before, assets), steps) if previous is not None and before else None
        found[execution.id] = Review(
            steps=steps,
            intact=intact,
            changes_since_approved=diff,
            compared_with=previous.id if diff is not None and previous is not None else None,
            execution_limit_s=limit_s,
            inputs=dict(plan["inputs"]) if isinstance(plan.get("inputs"), dict) else None,
        )
    return found


def _with_limits(
    steps: list[PlanStepView], sla_class: str, policies: Mapping[tuple[str, str], PolicyRow]
) -> list[PlanStepView]:
    """Each step with the timeout it runs with under the current policy (what the claim computes)."""
    out = []
    for step in steps:
        policy = policies.get((sla_class, step.action_class))
        limit = effective_step_s(step.timeout_s, policy.step_s) if policy is not None else None
        out.append(step.model_copy(update={"step_limit_s": limit}))
    return out


def steps_text(steps: Iterable[PlanStepView]) -> str:
    """The rendered steps as lines (what the diff compares): a header per step, then its params as JSON."""
    lines: list[str] = []
    for s in steps:
        timeout = f", timeout {s.timeout_s}s" if s.timeout_s else ""
        phase = f" [{s.phase}]" if s.phase != StepPhase.MAIN else ""  # a rollback step is marked: it runs only then
        lines.append(f"{s.index}. {s.name}{phase}: {s.action} on {s.target} ({s.action_class}{timeout})")
        params = json.dumps(s.params, indent=2, sort_keys=True, ensure_ascii=False)
        lines.extend(f"   {line}" for line in params.splitlines())
    return "\n".join(lines) + "\n"


def _at(plan: Mapping[str, Any], index: int) -> Any:
    found = step_at(plan, index)
    return found[1] if found is not None else None


def _assets(
    source: ReviewSource, executions: Sequence[ExecutionRow], plans: Mapping[str, Mapping[str, Any] | None]
) -> dict[str, AssetView]:
    """The assets the plans name, by id, each looked up in its own execution's tenant only."""
    wanted: dict[str, set[str]] = {}
    for execution in executions:
        plan = plans[execution.id]
        steps = [s for _phase, s in flat_steps(plan)] if plan is not None else []
        targets = {s["target"] for s in steps if isinstance(s, Mapping) and isinstance(s.get("target"), str)}
        wanted.setdefault(execution.tenant_id, set()).update(targets)
    found: dict[str, AssetView] = {}
    for tenant_id, ids in wanted.items():
        if ids:
            found.update((a.id, asset_view(a)) for a in source.assets(tenant_id, sorted(ids)))
    return found


def _render(plan: Mapping[str, Any], assets: Mapping[str, AssetView]) -> list[PlanStepView]:
    rendered = []
    for index, (phase, step) in enumerate(flat_steps(plan)):
        if not isinstance(step, Mapping):
            step = {}
        target_id = str(step.get("target", ""))
        asset = assets.get(target_id) or _missing_asset(target_id)
        params = step.get("params") if isinstance(step.get("params"), dict) else {}
        name, action = str(step.get("name", "")), str(step.get("action", ""))
        described = describe_step(index, name, action, asset, params)
        rendered.append(
            PlanStepView(
                index=index,
                name=name,
                action=action,
                target=asset.name,
                target_id=target_id,
                action_class=str(step.get("action_class", "")),
                timeout_s=step.get("timeout_s"),
                params=params,
                dry_run=described.description or (described.error or ""),
                dry_run_ok=described.ok,
                phase=phase.value,
                fanout=FanoutView.model_validate(fan) if isinstance(fan := step.get("fanout"), dict) else None,
            )
        )
    return rendered


def _missing_asset(asset_id: str) -> AssetView:
    return AssetView(
        id=asset_id,
        name=f"(asset {asset_id[:8]} not found)",
        connection="local",
        host=None,
        port=None,
        base_url=None,
        tags=[],
        credential_ref=None,
        has_known_host_key=False,
    )


def _diff(previous: ExecutionRow, before: list[PlanStepView], now: list[PlanStepView]) -> str | None:
    """A unified diff of the rendered steps from the earlier approved run to this plan; None if the same."""
    lines = list(
        difflib.unified_diff(
            steps_text(before).splitlines(keepends=True),
            steps_text(now).splitlines(keepends=True),
            fromfile=f"last approved run {previous.id[:8]} ({previous.status})",
            tofile="this plan",
        )
    )
    return "".join(lines) if lines else None
