"""What a submission is judged under, read once per transaction, and the judgement of each plan (DESIGN §5, §13).

``Intake.read`` checks the principal's permission and reads, inside the submitting transaction, everything
the server derives a plan's risk and limits from: the principal's current membership (its class limit), the
tenant's declarations (read-only prefixes, published runbooks: core/inventory/trust.py), its mode, the
policy rows (cached for a few seconds, as the engine caches them), the assets the plans target and, only
when a plan or a target's credential references one, the secrets' asset limits. ``Intake.judge`` then
derives one plan under them in memory: step classes, level, SLA class, the class permission, run mode,
targets resolved to asset ids, secret references checked, canonical form and hash. A batch of plans costs
the reads once, not once per plan, and a declaration withdrawn a moment ago still never lowers a level:
the reads are in the transaction that writes the executions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as select_columns
from sqlmodel import Session

from core import plan_fanout
from core.actions import registry
from core.change_window_store import cached_rules
from core.change_windows import Rules, evaluate, refusal_message
from core.errors import InvalidInput, NotFound, SafetyRefused
from core.identity import rbac
from core.identity.permissions import Permission
from core.identity.tenants import run_mode_for, tenant_settings
from core.inventory.trust import tenant_trust
from core.plan_hash import canonical_json, plan_hash
from core.plans import Plan, canonical_plan, reclassify
from core.policies import cached_policies
from core.risk import Trust
from core.rows import AssetRecord
from core.safety import secret_backends, secret_store
from core.safety.credentials import secret_refs
from core.schemas import PolicyView, Principal
from db.clock import utcnow
from db.enums import ActionClass, Connection, RunMode, SlaClass, WindowMode
from db.tables import Asset, Membership, TenantSettings


@dataclass(frozen=True)
class Judged:
    """One plan as the server derived it: the plan under the tenant's trust, its canonical text and hash."""

    plan: Plan
    canonical: dict[str, Any]  # targets as asset ids (``canonical_plan``)
    canonical_text: str
    plan_hash: str
    run_mode: RunMode
    policy: PolicyView  # the row of the plan's (SLA class, action class)
    assets: Mapping[str, AssetRecord]  # the plan's targets by name


@dataclass(frozen=True)
class Intake:
    """The state a transaction judges plans under (see the module docstring)."""

    principal: Principal
    membership: Membership
    trust: Trust
    policies: Mapping[tuple[SlaClass, ActionClass], PolicyView]
    settings: TenantSettings
    assets: Mapping[str, AssetRecord]
    secret_limits: Mapping[str, list[str] | None]  # the stored secrets referenced: their asset limits
    missing_secrets: frozenset[str]  # referenced, and held by no backend
    windows: Rules | None = None  # the tenant's change windows (core/change_window_store.py, cached)
    # The tags of the assets a fan-out step may select: every asset of the tenant when one selects by tag.
    inventory: Mapping[str, frozenset[str]] | None = None

    @classmethod
    def read(cls, session: Session, principal: Principal, plans: Sequence[Plan], *, permission: Permission) -> Intake:
        """Check ``permission`` and read what ``plans`` are judged under.

        Raises:
            PermissionDenied: the principal may not (``permission``). NotFound: a policy row is missing.
        """
        membership = rbac.require_member(session, principal, permission)
        tenant_id = principal.tenant_id
        if any(plan_fanout.needs_tags(p) for p in plans):
            assets = _all_assets(session, tenant_id)
        else:
            assets = _assets_by_name(session, tenant_id, (name for p in plans for name in asset_names(p)))
        referenced = {n for p in plans for n in p.secret_names}
        credentials = {a.credential_ref for a in assets.values() if a.credential_ref}
        limits = secret_store.asset_limits(session, tenant_id, referenced | credentials)
        missing = frozenset(
            n for n in referenced if n not in limits and not secret_backends.held_outside_store(principal.tenant, n)
        )
        return cls(
            principal=principal,
            membership=membership,
            trust=tenant_trust(session, tenant_id),
            policies=policy_table(session),
            settings=tenant_settings(session, tenant_id),
            assets=assets,
            secret_limits=limits,
            missing_secrets=missing,
            windows=cached_rules(session, tenant_id),
            inventory={name: _tags(a) for name, a in assets.items()},
        )

    def judge(self, plan: Plan, *, submitting: bool = True) -> Judged:
        """Derive ``plan`` under this state, in the order a submit refuses in: limits, class, mode, targets.

        Args:
            submitting: check the principal may run the plan's class (a preview does not, and resolves
                the targets before the run mode, as it always has).

        Raises:
            InvalidInput: a timeout no class holds; unknown targets or secrets; a target of the wrong kind;
                a secret the target may not use. PermissionDenied: the class is above the principal's limit.
            SafetyRefused: the tenant's mode refuses the plan's level, or its change windows refuse it now.
        """
        plan = plan_fanout.expand(
            plan,
            self.inventory or {},
            tenant=self.principal.tenant,
            approval_targets=self.settings.fanout_approval_targets,
        )
        plan = reclassify(plan, self.trust, self.policies)
        if plan.approval_level == 3 and plan_fanout.expanded(plan):
            raise InvalidInput(
                "level 3 gates every step, which a fan-out does not take; use level 2 (two approvers)",
                path="approval_level",
            )
        if plan.spec.priority > self.settings.max_priority:
            raise InvalidInput(
                f"priority {plan.spec.priority} is above this tenant's cap of {self.settings.max_priority}",
                path="priority",
            )
        if submitting:
            rbac.check_class(self.principal, self.membership, plan.action_class)
            run_mode = run_mode_for(self.settings, plan.approval_level)
            assets = self._resolve(plan)
            self._refuse_outside_window(plan, run_mode, assets)
        else:
            assets = self._resolve(plan)
            run_mode = run_mode_for(self.settings, plan.approval_level)
        canonical = canonical_plan(plan, {name: a.id for name, a in assets.items()})
        text = canonical_json(canonical)
        return Judged(
            plan=plan,
            canonical=canonical,
            canonical_text=text,
            plan_hash=plan_hash(text),
            run_mode=run_mode,
            policy=self.policies[(plan.sla_class, plan.action_class)],
            assets=assets,
        )

    def _refuse_outside_window(self, plan: Plan, run_mode: RunMode, assets: Mapping[str, AssetRecord]) -> None:
        """A tenant that refuses work outside its change windows refuses a live ``modify``+ plan now (DESIGN §14).

        Raises:
            SafetyRefused: ``change_window``, naming the next opening.
        """
        rules = self.windows
        if rules is None or rules.mode is not WindowMode.REFUSE or run_mode is RunMode.DRY_RUN:
            return
        tags = [_tags(a) for a in assets.values()]
        verdict = evaluate(rules, tags, plan.action_class, utcnow())
        if not verdict.allowed:
            raise SafetyRefused("change_window", refusal_message(verdict))

    def _resolve(self, plan: Plan) -> dict[str, AssetRecord]:
        """The plan's targets (tenant-scoped) by name, its secret references checked.

        Raises:
            InvalidInput: with every issue found, each with its path.
        """
        principal = self.principal
        assets: dict[str, AssetRecord] = {}
        issues: list[tuple[str, str]] = []
        for step in plan.all_steps:
            asset = self.assets.get(step.spec.asset)
            if asset is None:
                issues.append(
                    (f"{step.path}.target", f"unknown asset {step.spec.asset!r} in tenant {principal.tenant}")
                )
                continue
            assets[asset.name] = asset
            allowed = registry.get_action(step.spec.action).connections  # type: ignore[union-attr]
            if allowed is not None and Connection(asset.connection) not in allowed:
                kinds = "/".join(sorted(c.value for c in allowed))
                issues.append(
                    (
                        f"{step.path}.target",
                        f"{step.spec.action} runs on {kinds} assets; {asset.name} is {asset.connection}",
                    )
                )
        issues.extend(
            (path, f"unknown asset {name!r} in tenant {principal.tenant}")
            for path, name in plan.input_assets
            if name not in self.assets
        )
        missing = sorted(n for n in plan.secret_names if n in self.missing_secrets)
        issues.extend(("secrets", f"unknown secret {name!r} in tenant {principal.tenant}") for name in missing)
        issues.extend(self._secrets_off_limits(plan))
        if issues:
            raise InvalidInput(issues)
        return assets

    def _secrets_off_limits(self, plan: Plan) -> list[tuple[str, str]]:
        """(path, reason) for each secret a step would use on an asset the secret is not limited to (DESIGN §13).

        Names the step's params path and the secret, never a value. The asset's own credential counts too:
        the worker fetches it for the step.
        """
        issues: list[tuple[str, str]] = []
        for step in plan.all_steps:
            asset = self.assets.get(step.spec.asset)
            if asset is None:
                continue  # reported as an unknown target
            for name in sorted(secret_refs(step.params)):
                if not self._usable_on(name, asset.name):
                    issues.append((f"{step.path}.params", f"secret {name!r} may not be used on {asset.name}"))
            ref = asset.credential_ref
            if ref and not self._usable_on(ref, asset.name):
                reason = f"the credential {ref!r} of {asset.name} may not be used on it"
                issues.append((f"{step.path}.target", reason))
        return issues

    def _usable_on(self, name: str, asset_name: str) -> bool:
        """``secret_store.usable_on`` from the limits read once: a secret not in the store carries no limit."""
        allowed = self.secret_limits.get(name)
        return allowed is None or asset_name in allowed


def asset_names(plan: Plan) -> list[str]:
    """Every asset name the plan needs from the tenant's inventory: its targets (a fan-out's named ones), and its
    ``asset`` inputs' values."""
    names = [s.spec.target for s in plan.all_steps if s.spec.target is not None]
    names.extend(plan_fanout.named_assets(plan))
    names.extend(name for _path, name in plan.input_assets)
    return names


def policy_table(session: Session) -> dict[tuple[SlaClass, ActionClass], PolicyView]:
    """The current policy rows by (sla class, action class), through the policies' short cache.

    Raises:
        NotFound: a row is missing (run ``opsconductor init``).
    """
    table = {(SlaClass(p.sla_class), ActionClass(p.action_class)): p for p in cached_policies(session)}
    for sla in SlaClass:
        for cls in ActionClass:
            if (sla, cls) not in table:
                raise NotFound("timeout policy", f"{sla}/{cls}")
    return table


def _tags(asset: AssetRecord) -> frozenset[str]:
    return frozenset(str(t) for t in json.loads(asset.tags_json or "[]"))


def _all_assets(session: Session, tenant_id: str) -> dict[str, AssetRecord]:
    """Every asset of the tenant, as plain records (a fan-out selecting by tag looks at all of them)."""
    rows = session.execute(_ALL_ASSETS, {"tenant_id": tenant_id})
    return {row.name: AssetRecord(*row) for row in rows}


def _assets_by_name(session: Session, tenant_id: str, names: Iterable[str]) -> dict[str, AssetRecord]:
    """The tenant's assets among ``names`` (missing ones absent), as plain records: one Core read, no ORM."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    rows = session.execute(_ASSETS_BY_NAME, {"tenant_id": tenant_id, "names": wanted})
    return {row.name: AssetRecord(*row) for row in rows}


# Built once, on the table, the columns in AssetRecord's order (the plan review's rows, core/rows.py).
_ASSETS = Asset.__table__  # type: ignore[attr-defined]
_ASSETS_BY_NAME = select_columns(*(_ASSETS.c[f] for f in AssetRecord.__dataclass_fields__)).where(
    _ASSETS.c.tenant_id == bindparam("tenant_id"), _ASSETS.c.name.in_(bindparam("names", expanding=True))
)
_ALL_ASSETS = select_columns(*(_ASSETS.c[f] for f in AssetRecord.__dataclass_fields__)).where(
    _ASSETS.c.tenant_id == bindparam("tenant_id")
)
