"""The runbook library's rows: named, validated plans saved per tenant, each change a new version.

An admin may *publish* a runbook (DESIGN §13): the publication vouches for exactly its current text
(``published_hash`` = SHA-256 of ``plan_text``), and a submitted step equal to one of its steps is derived
``read`` (core/plans.py ``step_class``). Saving new text ends the publication.

Every stored text is also a ``RunbookVersion`` row (issue 13 item 5), never rewritten. Helpers here take the
caller's session and check nothing; the use cases (who may change what, the admin trail) are in
core/usecases/runbooks.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.errors import CoreError
from core.plans import parse_plan
from core.risk import step_key
from core.schemas import RunbookVersionView
from db.clock import utcnow
from db.enums import ActionClass
from db.tables import Runbook, RunbookVersion


def text_hash(plan_text: str) -> str:
    """What a publication binds to: SHA-256 (hex) of the runbook's text."""
    return hashlib.sha256(plan_text.encode("utf-8")).hexdigest()


def is_published(row: Runbook) -> bool:
    """True while the publication still matches the text (an edit leaves the hash behind)."""
    return row.published_hash is not None and row.published_hash == text_hash(row.plan_text)


def find(session: Session, tenant_id: str, name: str) -> Runbook | None:
    """The tenant's runbook called ``name``, if any."""
    return session.exec(select(Runbook).where(Runbook.tenant_id == tenant_id, Runbook.name == name)).first()


def store_runbook(
    session: Session,
    tenant_id: str,
    name: str,
    plan_text: str,
    description: str,
    actor: str | None,
    *,
    owner: str | None = None,
) -> tuple[Runbook, bool]:
    """Create or change a runbook in the caller's transaction (no checks: callers authorise and validate).

    A change writes a new version; new text also ends a publication. Saving the same text and description
    again changes nothing.

    Args:
        owner: the owner of a runbook created now (an existing one keeps its owner).

    Returns:
        The row, and whether anything changed (a new version was written).
    """
    description = description[:512]
    row = find(session, tenant_id, name)
    if row is not None and row.plan_text == plan_text and row.description == description:
        return row, False
    if row is None:
        # A name used before (then deleted) continues its numbering: its history stays in one sequence.
        last = session.exec(
            select(func.max(RunbookVersion.version)).where(
                RunbookVersion.tenant_id == tenant_id, RunbookVersion.name == name
            )
        ).one()
        row = Runbook(tenant_id=tenant_id, name=name, plan_text=plan_text, owner=owner, version=(last or 0) + 1)
    else:
        if row.plan_text != plan_text:
            # The hash alone would already stop vouching; clearing it says so in the row as well
            # (published_by/at stay: who vouched for the previous text, and when).
            row.published_hash = None
        row.version += 1
    row.plan_text = plan_text
    row.description = description
    row.updated_by = actor
    row.updated_at = utcnow()
    session.add(row)
    session.add(
        RunbookVersion(
            tenant_id=tenant_id,
            name=name,
            version=row.version,
            description=description,
            plan_text=plan_text,
            text_hash=text_hash(plan_text),
            owner=row.owner,
            created_by=(actor or "unknown")[:64],
            created_at=row.updated_at,
        )
    )
    session.flush()  # a concurrent save of the same version fails here, on the unique key
    return row, True


def versions(session: Session, tenant_id: str, name: str) -> list[RunbookVersionView]:
    """Every saved text of the tenant's runbook ``name``, newest first (including those before a deletion)."""
    rows = session.exec(
        select(RunbookVersion)
        .where(RunbookVersion.tenant_id == tenant_id, RunbookVersion.name == name)
        .order_by(col(RunbookVersion.version).desc())
    ).all()
    return [
        RunbookVersionView(
            name=r.name,
            version=r.version,
            description=r.description,
            plan_text=r.plan_text,
            text_hash=r.text_hash,
            owner=r.owner,
            created_by=r.created_by,
            created_at=r.created_at,
        )
        for r in rows
    ]


def mark_published(session: Session, row: Runbook, actor: str) -> None:
    """Publish ``row``'s current text in the caller's transaction (no checks: callers authorise)."""
    row.published_hash = text_hash(row.plan_text)
    row.published_by = actor[:64]
    row.published_at = utcnow()
    session.add(row)
    session.flush()


def vouched_steps(published: Iterable[tuple[str, str | None]]) -> dict[str, ActionClass]:
    """``step_key`` → the class the runbook gives it, for every step of the published runbooks given as
    (plan_text, published_hash) rows (core/inventory/trust.py reads them with the tenant's other declarations).

    A step in several published runbooks keeps the lowest class one of them vouches for. A runbook edited since
    it was published, or whose text no longer validates (an action uninstalled), vouches for nothing.
    """
    steps: dict[str, ActionClass] = {}
    for plan_text, published_hash in published:
        digest = text_hash(plan_text)
        if published_hash != digest:
            continue  # edited since it was published (``is_published``)
        for key, cls in _vouched(plan_text, digest):
            if key not in steps or cls.rank < steps[key].rank:
                steps[key] = cls
    return steps


# Every submit derives its classes under the tenant's published runbooks (DESIGN §13), re-read in its own
# transaction; what a text vouches for never changes, so its parse is kept (by the text's hash) instead of
# parsing each runbook's YAML again for every plan submitted.
_VOUCHED_CACHE_SIZE = 512
_vouched_cache: dict[str, tuple[tuple[str, ActionClass], ...]] = {}


def _vouched(plan_text: str, digest: str) -> tuple[tuple[str, ActionClass], ...]:
    """(step_key, class) for each step of a published text; none if it no longer validates."""
    hit = _vouched_cache.get(digest)
    if hit is not None:
        return hit
    try:
        plan = parse_plan(plan_text, template=True)
    except CoreError:
        return ()  # not kept: an action installed later makes it valid again
    # A step that takes an input vouches for nothing: the admin published ``{{ input:NAME }}``, not any value
    # a submitter may put there (nor the sample a template is validated with).
    found = tuple(
        (step_key(s.spec.action, s.params), s.spec.action_class or ActionClass.READ)
        for s in plan.all_steps
        if s.index not in plan.templated
    )
    if len(_vouched_cache) >= _VOUCHED_CACHE_SIZE:
        _vouched_cache.clear()  # bounded: texts edited over a long life are forgotten, the live ones re-parsed
    _vouched_cache[digest] = found
    return found
