"""Submitting plans: validate, resolve, derive, dedupe, persist, and queue those that need no approval.

The server decides risk (DESIGN §13): step classes are derived again inside the submitting transaction
under the tenant's declarations (read-only prefixes, published runbooks; core/inventory/trust.py), so what
a client computed, or a declaration withdrawn a moment ago, never lowers a level.

One transaction writes the executions, their steps and first events (and, at level 0, their queue rows);
a broker message follows only after commit. Nothing is written when anything is refused.

What each plan costs is kept to what it needs (issue 15 item 4, bench/submit_cost.py): it is parsed and
validated once (the tenant's trust re-derives only the classes), canonicalised and hashed once; what it is
judged under is read once per transaction (core/usecases/intake.py), the rows are written with one
multi-row INSERT per table (core/usecases/submission_rows.py), and the view returned is built from them,
not read back (core/usecases/submitted_views.py).

``submit_many`` is the batch for scripts: one transaction for all its plans, all or nothing. Every plan is
validated on its own; one ``InvalidInput`` lists the issues of every invalid plan (paths prefixed
``plans[i].``), any other refusal (permission, the tenant's mode, an idempotency conflict) is raised for the
first plan it concerns, its message prefixed ``plans[i]: ``. Idempotency inside a batch is that of the same
submits made one after the other: a plan whose key an earlier plan of the batch (or an active execution)
holds returns that execution, ``created`` False; the same caller key given to two different plans is a
Conflict.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core import engine, idempotency
from core.approval_levels import APPROVALS_REQUIRED
from core.errors import Conflict, CoreError, InvalidInput
from core.fsm import TERMINAL
from core.identity import rbac
from core.identity.permissions import Permission
from core.inventory import asset_service
from core.notify import outbox as notify_outbox
from core.plan_phases import fanout_group, flat_steps
from core.plans import Plan, parse_plan
from core.reads.executions import build_view, get_execution, load_execution
from core.schemas import ExecutionView, PlanPreview, Principal, SubmitResult
from core.transactions import session_scope
from core.usecases.intake import Intake, Judged, asset_names
from core.usecases.submission_rows import NewExecution, new_execution, write
from core.usecases.submitted_views import fresh_views
from db.clock import utcnow
from db.enums import ExecutionStatus
from db.settings import get_settings
from db.tables import Execution, ExecutionStep

PlanSource = str | bytes | Mapping[str, Any]

MAX_BATCH = 500  # plans per submit_many: one transaction holds SQLite's write lock while it writes them all


def submit(
    principal: Principal,
    plan: PlanSource,
    *,
    idempotency_key: str | None = None,
    background: bool = False,
    inputs: Mapping[str, Any] | None = None,
    notify_on_finish: bool = False,
) -> SubmitResult:
    """Submit a plan (YAML/JSON text or a mapping) as the principal.

    Args:
        inputs: values for the plan's declared ``inputs:`` by name (DESIGN §14), substituted before the plan
            is canonicalised and hashed: the approval covers the concrete plan.
        notify_on_finish: tell the requester when it ends, through their own opt-ins (``subscribe_email``),
            including one that hears only of executions asked for so (issue 16 item 3). A submission that
            returns an existing execution (its idempotency key) leaves that one as it was.

    Returns:
        The execution and ``created``; ``created`` is False when an active execution with the same
        idempotency key already exists (that execution is returned instead).

    Raises:
        InvalidInput: the plan, a target, a secret reference or the key is wrong (each issue has a path).
        PermissionDenied: the principal may not submit, or not at this action class.
        SafetyRefused: the tenant's mode refuses it (``off``, or above the live level with ``refuse``).
        Conflict: a caller-given key is already used by a different plan.
        ServiceUnavailable: a target had to be looked up in the asset service, and it could not be asked.
    """
    [result] = _submit(
        principal,
        [plan],
        [idempotency_key],
        [inputs],
        background=background,
        batch=False,
        notify_on_finish=notify_on_finish,
    )
    return result


def submit_many(
    principal: Principal,
    plans: Sequence[PlanSource],
    *,
    idempotency_keys: Sequence[str | None] | None = None,
    background: bool = False,
    inputs: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[SubmitResult]:
    """Submit several plans as the principal in one transaction, all or nothing (scripts: see the module docstring).

    Each result is what ``submit`` would have returned for its plan, had the plans been submitted one after
    the other; fast level-0 plans (unless ``background``) run in the caller after the batch commits, in order.

    Args:
        idempotency_keys: one key (or None) per plan, as ``submit``'s ``idempotency_key``.
        inputs: one mapping of input values (or None) per plan, as ``submit``'s ``inputs``.

    Raises:
        InvalidInput: every issue of every invalid plan, paths prefixed ``plans[i].``; too many plans
            (``MAX_BATCH``), or not one key per plan.
        PermissionDenied, SafetyRefused, Conflict: as ``submit``, for the first plan concerned (``plans[i]: …``).
        ServiceUnavailable: as ``submit``.
    """
    if len(plans) > MAX_BATCH:
        raise InvalidInput(f"{len(plans)} plans; submit at most {MAX_BATCH} in one batch", path="plans")
    keys: list[str | None] = list(idempotency_keys) if idempotency_keys is not None else [None] * len(plans)
    if len(keys) != len(plans):
        raise InvalidInput(f"{len(keys)} keys for {len(plans)} plans: give one per plan", path="idempotency_keys")
    values: list[Mapping[str, Any] | None] = list(inputs) if inputs is not None else [None] * len(plans)
    if len(values) != len(plans):
        raise InvalidInput(f"{len(values)} input sets for {len(plans)} plans: give one per plan", path="inputs")
    if not plans:
        return []
    return _submit(principal, list(plans), keys, values, background=background, batch=True)


def _submit(
    principal: Principal,
    sources: list[PlanSource],
    keys: list[str | None],
    inputs: list[Mapping[str, Any] | None],
    *,
    background: bool,
    batch: bool,
    rerun_of: str | None = None,
    notify_on_finish: bool = False,
) -> list[SubmitResult]:
    settings = get_settings()
    parsed, caller_keys = _parse(sources, keys, inputs, batch=batch)
    asset_service.import_missing(principal, (name for p in parsed for name in asset_names(p)))  # before ours
    look_up = False
    for _ in range(3):
        try:
            results, inline = _insert(
                principal,
                parsed,
                caller_keys,
                background,
                look_up,
                settings.idempotency_window_s,
                batch=batch,
                rerun_of=rerun_of,
                notify_on_finish=notify_on_finish,
            )
        except _KeyTaken:
            look_up = True  # the next attempt reads the keys' holders first
            continue
        return _run_inline(principal, results, inline)
    raise Conflict("the idempotency key changed hands three times while submitting; try again")


def _parse(
    sources: list[PlanSource], keys: list[str | None], inputs: list[Mapping[str, Any] | None], *, batch: bool
) -> tuple[list[Plan], list[str | None]]:
    """Each plan parsed and validated once, and each caller key checked; a batch reports every plan's issues."""
    settings = get_settings()
    plans: list[Plan] = []
    caller_keys: list[str | None] = []
    issues: list[tuple[str, str]] = []
    for index, (source, key, values) in enumerate(zip(sources, keys, inputs, strict=True)):
        try:
            plans.append(
                parse_plan(source, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes, inputs=values)
            )
            caller_keys.append(idempotency.check_caller_key(key) if key is not None else None)
        except InvalidInput as exc:
            if not batch:
                raise
            issues.extend(_prefixed(index, exc.issues))
    if issues:
        raise InvalidInput(issues)
    return plans, caller_keys


class _KeyTaken(Exception):
    """The insert lost to an active execution holding one of the idempotency keys."""


def _is_key_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return "ux_executions_idempotency_active" in text or "executions.tenant_id, executions.idempotency_key" in text


# What became of each plan of a batch: a new execution, an active one holding its key, or the same as an
# earlier plan of the batch (by index).
_Outcome = NewExecution | Execution | int


def _insert(
    principal: Principal,
    plans: list[Plan],
    caller_keys: list[str | None],
    background: bool,
    look_up: bool,
    window_s: int,
    *,
    batch: bool,
    rerun_of: str | None = None,
    notify_on_finish: bool = False,
) -> tuple[list[SubmitResult], list[str]]:
    """One attempt in one transaction: the results in order, and the ids to run inline after commit."""
    try:
        with session_scope() as session:
            intake = Intake.read(session, principal, plans, permission=Permission.SUBMIT)
            if notify_on_finish and not notify_outbox.has_own_channel(
                session, tenant_id=principal.tenant_id, user_id=principal.user_id
            ):
                raise InvalidInput(
                    "you have no notification address to be told at: subscribe one first "
                    "(opsconductor notify subscribe ADDRESS, or Notify me on the Submit page)",
                    path="notify_on_finish",
                )
            judged = _judge(intake, plans, batch=batch)
            outcomes = _outcomes(
                session,
                principal,
                judged,
                caller_keys,
                background,
                look_up,
                window_s,
                batch=batch,
                rerun_of=rerun_of,
                notify_on_finish=notify_on_finish,
            )
            new = [o for o in outcomes if isinstance(o, NewExecution)]
            write(session, principal, new)
            views = dict(
                zip((e.id for e in new), fresh_views(session, principal, new, intake.policies.values()), strict=True)
            )
            results: list[SubmitResult] = []
            for outcome in outcomes:
                if isinstance(outcome, NewExecution):
                    results.append(SubmitResult(execution=views[outcome.id], created=True))
                elif isinstance(outcome, Execution):
                    results.append(SubmitResult(execution=build_view(session, outcome), created=False))
                else:
                    results.append(SubmitResult(execution=results[outcome].execution, created=False))
    except IntegrityError as exc:
        if not _is_key_violation(exc):
            raise
        raise _KeyTaken from None
    return results, [e.id for e in new if e.inline]


def _judge(intake: Intake, plans: list[Plan], *, batch: bool) -> list[Judged]:
    """Each plan judged under ``intake``; a batch collects every plan's InvalidInput, names the plan otherwise."""
    judged: list[Judged] = []
    issues: list[tuple[str, str]] = []
    for index, plan in enumerate(plans):
        try:
            judged.append(intake.judge(plan))
        except InvalidInput as exc:
            if not batch:
                raise
            issues.extend(_prefixed(index, exc.issues))
        except CoreError as exc:
            if not batch:
                raise
            raise _naming(index, exc) from exc
    if issues:
        raise InvalidInput(issues)
    return judged


def _outcomes(
    session: Session,
    principal: Principal,
    judged: list[Judged],
    caller_keys: list[str | None],
    background: bool,
    look_up: bool,
    window_s: int,
    *,
    batch: bool,
    rerun_of: str | None = None,
    notify_on_finish: bool = False,
) -> list[_Outcome]:
    """What each plan becomes, by its idempotency key (see the module docstring); rows to write are not yet written.

    ``look_up``: read the keys' active holders first (after an insert lost to one); otherwise the
    database's unique index finds them, at no cost when there are none.
    """
    keys = [
        caller or idempotency.derive_key(principal.tenant_id, principal.user_id, j.plan_hash)
        for j, caller in zip(judged, caller_keys, strict=True)
    ]
    holders = idempotency.active_holders(session, principal.tenant_id, keys) if look_up else {}
    first: dict[str, int] = {}
    outcomes: list[_Outcome] = []
    now: datetime | None = None
    for index, (j, key, caller) in enumerate(zip(judged, keys, caller_keys, strict=True)):
        if key in first:
            earlier = first[key]
            if caller is not None and judged[earlier].plan_hash != j.plan_hash:
                raise Conflict(
                    f"plans[{index}]: idempotency key {caller!r} is already used by plans[{earlier}], a different plan"
                )
            outcomes.append(earlier)
            continue
        first[key] = index
        holder = holders.get(key)
        if holder is not None:
            if caller is not None and holder.plan_hash != j.plan_hash:
                message = f"idempotency key {caller!r} is already used by a different plan"
                raise Conflict(f"plans[{index}]: {message}" if batch else message, owner=holder.id)
            if not idempotency.release_if_stale(session, holder, window_s=window_s):
                outcomes.append(holder)
                continue
        # Strictly increasing, so the batch's executions keep their order wherever they are sorted by time.
        now = utcnow() if now is None else max(utcnow(), now + timedelta(microseconds=1))
        outcomes.append(
            new_execution(
                principal,
                j,
                caller_key=caller,
                background=background,
                now=now,
                rerun_of=rerun_of,
                notify_on_finish=notify_on_finish,
            )
        )
    return outcomes


def _run_inline(principal: Principal, results: list[SubmitResult], inline: list[str]) -> list[SubmitResult]:
    """Run the fast level-0 executions here, through the same engine (same leases, same events), in order;
    each result (and any later plan's that shares its key) shows where it ended."""
    finished: dict[str, ExecutionView] = {}
    for execution_id in inline:
        engine.run_inline(execution_id)
        finished[execution_id] = get_execution(principal, execution_id)
    if not finished:
        return results
    return [
        r.model_copy(update={"execution": finished[r.execution.execution_id]})
        if r.execution.execution_id in finished
        else r
        for r in results
    ]


def _prefixed(index: int, issues: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """A batch plan's issues with its index in front of each path: ``plans[3].steps[0].target``."""
    return [(f"plans[{index}].{path}" if path else f"plans[{index}]", message) for path, message in issues]


def _naming(index: int, exc: CoreError) -> CoreError:
    """``exc`` (same class and facts) with its message naming the batch plan it concerns: ``plans[3]: …``."""
    named = type(exc).__new__(type(exc))
    named.__dict__.update(exc.__dict__)
    named.message = f"plans[{index}]: {exc.message}"
    named.args = (named.message,)
    return named


def preview(
    principal: Principal, plan: PlanSource, *, background: bool = False, inputs: Mapping[str, Any] | None = None
) -> PlanPreview:
    """What the server would derive from this plan (with these ``inputs``), writing nothing but the asset
    service's imports."""
    settings = get_settings()
    parsed = parse_plan(plan, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes, inputs=inputs)
    asset_service.import_missing(principal, (name for name in asset_names(parsed)))
    with session_scope() as session:
        judged = Intake.read(session, principal, [parsed], permission=Permission.READ).judge(parsed, submitting=False)
    derived = judged.plan
    return PlanPreview(
        name=derived.spec.name,
        plan_hash=judged.plan_hash,
        action_class=derived.action_class.value,
        approval_level=derived.approval_level,
        approvals_required=APPROVALS_REQUIRED[derived.approval_level],
        sla_class=derived.sla_class.value,
        execution_mode=derived.execution_mode(background=background).value,
        run_mode=judged.run_mode.value,
        estimated_s=derived.estimated_s,
        policy=judged.policy,
        steps=[
            {
                "index": s.index,
                "name": s.spec.name,
                "action": s.spec.action,
                "target": s.spec.asset,
                "asset_id": judged.assets[s.spec.asset].id,
                "action_class": s.action_class.value,
                "timeout_s": s.spec.timeout_s,
                "step_limit_s": derived.step_limit_s(s),
                "phase": s.phase.value,
            }
            for s in derived.all_steps
        ],
        secret_names=sorted(derived.secret_names),
        execution_limit_s=derived.execution_limit_s,
        inputs=dict(derived.inputs) if derived.inputs is not None else None,
    )


def rerun_plan(principal: Principal, execution_id: str, *, from_step: int = 0) -> dict[str, Any]:
    """An ended execution's plan as a submit takes it, to run again or to edit first: the stored canonical
    plan with the asset names the steps recorded in place of asset ids, without the record of its input
    values (the steps hold them), and only the steps from ``from_step`` on (a DLQ entry's remaining steps).

    Raises:
        NotFound: no such execution in the tenant. Conflict: it has not ended yet.
        InvalidInput: ``from_step`` is not one of its steps.
    """
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        execution = load_execution(session, principal.tenant_id, execution_id)
        if ExecutionStatus(execution.status) not in TERMINAL:
            raise Conflict(f"execution {execution_id} is still {execution.status}; cancel it or wait for its end")
        names = dict(
            session.exec(
                select(ExecutionStep.step_index, ExecutionStep.target_name).where(
                    ExecutionStep.execution_id == execution.id
                )
            ).all()
        )
        plan: dict[str, Any] = json.loads(execution.plan_json)
    if not 0 <= from_step < len(plan["steps"]):
        raise InvalidInput(f"the plan has steps 0 to {len(plan['steps']) - 1}", path="from_step")
    for index, (_phase, step) in enumerate(flat_steps(plan)):  # rollback steps too: their rows follow
        step["target"] = names[index]
    if (group := fanout_group(plan, from_step)) is not None:
        from_step = group.start  # a fan-out runs again whole: its targets ran in no fixed order
    plan["steps"] = _collapse_fanouts(plan["steps"][from_step:])
    # The steps hold the values the original was bound with; the record of them is not a declaration.
    plan.pop("inputs", None)
    return plan


def _collapse_fanouts(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Canonical steps with each fan-out's expanded steps written back as the one step they came from, its
    targets by name (the assets it ran on) and its limits as the counts they were resolved to."""
    out: list[dict[str, Any]] = []
    for step in steps:
        fan = step.pop("fanout", None)
        if fan is None:
            out.append(step)
        elif fan["position"] == 0 or not out or out[-1]["name"] != fan["step"]:
            written = {k: v for k, v in step.items() if k != "target"} | {"name": fan["step"]}
            written |= {"targets": {"names": [step["target"]]}, "max_concurrency": fan["max_concurrency"]}
            out.append(written | {"max_errors": fan["max_errors"]})
        else:
            out[-1]["targets"]["names"].append(step["target"])
    return out


def rerun(
    principal: Principal,
    execution_id: str,
    *,
    background: bool = True,
    plan: PlanSource | None = None,
    notify_on_finish: bool = False,
) -> SubmitResult:
    """Submit an ended execution's plan again, as ``principal``: always a new execution, with its own approvals.

    The plan is ``rerun_plan``'s (the same steps, by asset name), or ``plan``, an edited one (Edit and rerun):
    either is validated, derived and approved exactly like a fresh submission (level 1 and up wait for a
    fresh approval; the old one's approvals bind to the old execution only). It gets a fresh idempotency
    key, so the window of the old one does not hand the old execution back, and ``rerun_of`` links it to
    the old one, which must be the principal's tenant's and ended either way.

    Raises:
        NotFound: no such execution in the tenant. Conflict: it has not ended yet.
        InvalidInput: the edited plan does not validate (nothing is written).
    """
    stored = rerun_plan(principal, execution_id)
    key = f"rerun-{uuid.uuid4().hex}"  # never reused: a rerun is a new execution, whatever the window says
    source = stored if plan is None else plan
    [result] = _submit(
        principal,
        [source],
        [key],
        [None],
        background=background,
        batch=False,
        rerun_of=execution_id,
        notify_on_finish=notify_on_finish,
    )
    return result
