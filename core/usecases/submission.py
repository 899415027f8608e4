"""Submitting a plan: validate, resolve, derive, dedupe, persist, and queue if no approval is needed.

The server decides risk (DESIGN §13): step classes are derived again inside the submitting transaction
under the tenant's declarations (read-only prefixes, published runbooks; core/inventory/trust.py), so what
a client computed, or a declaration withdrawn a moment ago, never lowers a level.

One transaction writes the execution, its steps and its first event (and, at level 0, its queue row);
a broker message follows only after commit. Nothing is written when anything is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core import approval_rules, engine, idempotency
from core.actions import registry
from core.approval_levels import APPROVALS_REQUIRED
from core.audit import record_event
from core.engine.outbox import enqueue
from core.errors import Conflict, InvalidInput, NotFound
from core.fsm import TERMINAL, initial_status
from core.identity import rbac
from core.identity.permissions import Permission
from core.identity.tenants import run_mode_for, tenant_settings
from core.inventory import asset_service
from core.inventory.assets import assets_by_name
from core.inventory.trust import tenant_trust
from core.plan_hash import canonical_json, plan_hash
from core.plans import Plan, PolicyTable, canonical_plan, parse_plan, reclassify
from core.policies import get_policy, list_policies
from core.reads.executions import build_view, get_execution, load_execution
from core.safety import secret_backends, secret_store
from core.safety.credentials import secret_refs
from core.schemas import PlanPreview, Principal, SubmitResult
from core.transactions import session_scope
from db.clock import utcnow
from db.enums import ActionClass, Connection, ExecutionMode, ExecutionStatus, SlaClass
from db.settings import get_settings
from db.tables import Asset, Execution, ExecutionStep


def submit(
    principal: Principal,
    plan: str | bytes | Mapping[str, Any],
    *,
    idempotency_key: str | None = None,
    background: bool = False,
) -> SubmitResult:
    """Submit a plan (YAML/JSON text or a mapping) as the principal.

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
    settings = get_settings()
    parsed = parse_plan(plan, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes)
    asset_service.import_missing(principal, (s.spec.target for s in parsed.steps))  # before our transaction
    caller_key = idempotency.check_caller_key(idempotency_key) if idempotency_key is not None else None
    for _ in range(3):
        try:
            return _insert(principal, parsed, caller_key, background)
        except _KeyTaken:
            existing = _existing(principal, parsed, caller_key, settings.idempotency_window_s)
            if existing is not None:
                return existing
    raise Conflict("the idempotency key changed hands three times while submitting; try again")


class _KeyTaken(Exception):
    """The insert lost to an active execution holding the same idempotency key."""


def _is_key_violation(exc: IntegrityError) -> bool:
    text = str(exc.orig)
    return "ux_executions_idempotency_active" in text or "executions.tenant_id, executions.idempotency_key" in text


def _insert(principal: Principal, plan: Plan, caller_key: str | None, background: bool) -> SubmitResult:
    try:
        with session_scope() as session:
            execution = _persist(session, principal, plan, caller_key, background)
            inline = execution.execution_mode == ExecutionMode.IMMEDIATE.value
            queued = execution.status == ExecutionStatus.APPROVED
            if queued:
                enqueue(session, execution, actor=principal.username, send=not inline)  # inline: no message
            view = build_view(session, execution)
    except IntegrityError as exc:
        if not _is_key_violation(exc):
            raise
        raise _KeyTaken from None
    if queued and inline:
        # Fast and level 0: run here, through the same engine (same leases, same events).
        engine.run_inline(view.execution_id)
        return SubmitResult(execution=get_execution(principal, view.execution_id), created=True)
    return SubmitResult(execution=view, created=True)


def _existing(principal: Principal, plan: Plan, caller_key: str | None, window_s: int) -> SubmitResult | None:
    """The active holder of the key as the result of a duplicate submit; None if the key is free again."""
    with session_scope() as session:
        canonical, _assets = _canonical(session, principal, _trusted(session, principal, plan))
        digest = plan_hash(canonical)
        key = caller_key or idempotency.derive_key(principal.tenant_id, principal.user_id, digest)
        holder = idempotency.active_holder(session, principal.tenant_id, key)
        if holder is None:
            return None  # it ended between our insert and this read
        if caller_key is not None and holder.plan_hash != digest:
            raise Conflict(f"idempotency key {caller_key!r} is already used by a different plan", owner=holder.id)
        if idempotency.release_if_stale(session, holder, window_s=window_s):
            return None
        return SubmitResult(execution=build_view(session, holder), created=False)


def _persist(session: Session, principal: Principal, plan: Plan, caller_key: str | None, background: bool) -> Execution:
    rbac.require(session, principal, Permission.SUBMIT)
    plan = _trusted(session, principal, plan)
    rbac.require_class(session, principal, plan.action_class)
    run_mode = run_mode_for(tenant_settings(session, principal.tenant_id), plan.approval_level)
    canonical, assets = _canonical(session, principal, plan)
    canonical_text = canonical_json(canonical)
    digest = plan_hash(canonical_text)
    policy = get_policy(session, plan.sla_class, plan.action_class)
    status = initial_status(plan.approval_level)
    now = utcnow()
    execution = Execution(
        tenant_id=principal.tenant_id,
        requested_by=principal.user_id,
        name=plan.spec.name,
        description=plan.spec.description,
        plan_json=canonical_text,
        plan_hash=digest,
        action_class=plan.action_class.value,
        approval_level=plan.approval_level,
        sla_class=plan.sla_class.value,
        execution_mode=plan.execution_mode(background=background).value,
        run_mode=run_mode.value,
        continue_on_error=plan.spec.continue_on_error,
        status=status.value,
        idempotency_key=caller_key or idempotency.derive_key(principal.tenant_id, principal.user_id, digest),
        approval_expires_at=now + timedelta(seconds=policy.approval_s)
        if status is ExecutionStatus.PENDING_APPROVAL
        else None,
        created_at=now,
        updated_at=now,
    )
    execution.seal = approval_rules.execution_seal(execution)
    session.add(execution)
    session.flush()  # the idempotency index speaks here
    for step in plan.steps:
        asset = assets[step.spec.target]
        session.add(
            ExecutionStep(
                execution_id=execution.id,
                tenant_id=principal.tenant_id,
                step_index=step.index,
                name=step.spec.name,
                action=step.spec.action,
                target_asset_id=asset.id,
                target_name=asset.name,
                action_class=step.action_class.value,
                params_json=canonical_json(step.params),
                timeout_s=step.spec.timeout_s,
            )
        )
    record_event(
        session,
        execution_id=execution.id,
        tenant_id=principal.tenant_id,
        kind="status",
        actor=principal.username,
        message=f"submitted; needs {APPROVALS_REQUIRED[plan.approval_level]} approval(s)",
        to_status=status.value,
        data={"plan_hash": digest, "run_mode": run_mode.value, "approval_level": plan.approval_level},
    )
    return execution


def _trusted(session: Session, principal: Principal, plan: Plan) -> Plan:
    """``plan`` with its classes derived under the tenant's current declarations, and its SLA class from the
    current policy rows (a declared timeout no class can hold is refused here, naming the limit)."""
    return reclassify(plan, tenant_trust(session, principal.tenant_id), policy_table(session))


def policy_table(session: Session) -> PolicyTable:
    """The current policy rows by (sla class, action class).

    Raises:
        NotFound: a row is missing (run ``opsconductor init``).
    """
    table = {(SlaClass(p.sla_class), ActionClass(p.action_class)): p for p in list_policies(session)}
    for sla in SlaClass:
        for cls in ActionClass:
            if (sla, cls) not in table:
                raise NotFound("timeout policy", f"{sla}/{cls}")
    return table


def _canonical(session: Session, principal: Principal, plan: Plan) -> tuple[dict[str, Any], dict[str, Asset]]:
    """Resolve targets (tenant-scoped) and secret references; return the canonical plan and the assets."""
    assets = assets_by_name(session, principal.tenant_id, (s.spec.target for s in plan.steps))
    issues: list[tuple[str, str]] = []
    for step in plan.steps:
        asset = assets.get(step.spec.target)
        if asset is None:
            issues.append(
                (f"steps[{step.index}].target", f"unknown asset {step.spec.target!r} in tenant {principal.tenant}")
            )
            continue
        allowed = registry.get_action(step.spec.action).connections  # type: ignore[union-attr]
        if allowed is not None and Connection(asset.connection) not in allowed:
            kinds = "/".join(sorted(c.value for c in allowed))
            issues.append(
                (
                    f"steps[{step.index}].target",
                    f"{step.spec.action} runs on {kinds} assets; {asset.name} is {asset.connection}",
                )
            )
    missing = sorted(
        name
        for name in plan.secret_names
        if not secret_backends.exists(session, principal.tenant_id, principal.tenant, name)
    )
    issues.extend(("secrets", f"unknown secret {name!r} in tenant {principal.tenant}") for name in missing)
    issues.extend(_secrets_off_limits(session, principal, plan, assets))
    if issues:
        raise InvalidInput(issues)
    return canonical_plan(plan, {name: a.id for name, a in assets.items()}), assets


def _secrets_off_limits(
    session: Session, principal: Principal, plan: Plan, assets: Mapping[str, Asset]
) -> list[tuple[str, str]]:
    """(path, reason) for each secret a step would use on an asset the secret is not limited to (DESIGN §13).

    Names the step's params path and the secret, never a value. The asset's own credential counts too:
    the worker fetches it for the step.
    """
    issues: list[tuple[str, str]] = []
    for step in plan.steps:
        asset = assets.get(step.spec.target)
        if asset is None:
            continue  # reported as an unknown target
        for name in sorted(secret_refs(step.params)):
            if not secret_store.usable_on(session, principal.tenant_id, name, asset.name):
                issues.append((f"steps[{step.index}].params", f"secret {name!r} may not be used on {asset.name}"))
        ref = asset.credential_ref
        if ref and not secret_store.usable_on(session, principal.tenant_id, ref, asset.name):
            reason = f"the credential {ref!r} of {asset.name} may not be used on it"
            issues.append((f"steps[{step.index}].target", reason))
    return issues


def preview(principal: Principal, plan: str | bytes | Mapping[str, Any], *, background: bool = False) -> PlanPreview:
    """What the server would derive from this plan, writing nothing but the asset service's imports."""
    settings = get_settings()
    parsed = parse_plan(plan, max_steps=settings.max_plan_steps, max_bytes=settings.max_plan_bytes)
    asset_service.import_missing(principal, (s.spec.target for s in parsed.steps))
    with session_scope() as session:
        rbac.require(session, principal, Permission.READ)
        parsed = _trusted(session, principal, parsed)
        canonical, assets = _canonical(session, principal, parsed)
        run_mode = run_mode_for(tenant_settings(session, principal.tenant_id), parsed.approval_level)
        return PlanPreview(
            name=parsed.spec.name,
            plan_hash=plan_hash(canonical),
            action_class=parsed.action_class.value,
            approval_level=parsed.approval_level,
            approvals_required=APPROVALS_REQUIRED[parsed.approval_level],
            sla_class=parsed.sla_class.value,
            execution_mode=parsed.execution_mode(background=background).value,
            run_mode=run_mode.value,
            estimated_s=parsed.estimated_s,
            policy=get_policy(session, parsed.sla_class, parsed.action_class),
            steps=[
                {
                    "index": s.index,
                    "name": s.spec.name,
                    "action": s.spec.action,
                    "target": s.spec.target,
                    "asset_id": assets[s.spec.target].id,
                    "action_class": s.action_class.value,
                    "timeout_s": s.spec.timeout_s,
                    "step_limit_s": parsed.step_limit_s(s),
                }
                for s in parsed.steps
            ],
            secret_names=sorted(parsed.secret_names),
            execution_limit_s=parsed.execution_limit_s,
        )


def rerun(principal: Principal, execution_id: str, *, background: bool = True) -> SubmitResult:
    """Submit an ended execution's plan again, as ``principal``: a new execution with its own approvals.

    The stored canonical plan names assets by id; they are turned back into the names the steps recorded,
    so the new submission is validated, derived and approved exactly like a fresh one.

    Raises:
        NotFound: no such execution in the tenant. Conflict: it has not ended yet.
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
        plan = json.loads(execution.plan_json)
    for index, step in enumerate(plan["steps"]):
        step["target"] = names[index]
    return submit(principal, plan, background=background)
