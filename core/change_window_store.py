"""A tenant's stored change windows (table ``change_windows``), read through a short per-process cache.

The engine asks for a tenant's rules at the start of every ``modify``+ execution and the submit asks for
them for every such plan; a tenant without rules must cost them nothing, so the answer (the rules, or
"none") is cached per tenant for ``CACHE_TTL_S``, as the timeout policies are (core/policies.py). An edit
clears this process's cache at once; other processes see it within the TTL.
"""

from __future__ import annotations

import json
import threading
import time

from sqlmodel import Session

from core.change_windows import Rules, parse_rules, rules_document
from db.clock import utcnow
from db.tables import ChangeWindowSettings

CACHE_TTL_S = 5.0
_cache: dict[tuple[int, str], tuple[float, Rules | None]] = {}
_guard = threading.Lock()


def stored_rules(session: Session, tenant_id: str) -> Rules | None:
    """The tenant's rules as stored (None: the tenant has none)."""
    row = session.get(ChangeWindowSettings, tenant_id)
    if row is None:
        return None
    doc = json.loads(row.rules_json or "{}")
    return parse_rules(doc | {"mode": row.mode, "max_wait_s": row.max_wait_s})


def cached_rules(session: Session, tenant_id: str) -> Rules | None:
    """``stored_rules`` through the per-process cache (None also for rules that hold nothing)."""
    key = (id(session.get_bind()), tenant_id)
    now = time.monotonic()
    with _guard:
        hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_TTL_S:
        return hit[1]
    rules = stored_rules(session, tenant_id)
    if rules is not None and rules.empty:
        rules = None
    with _guard:
        _cache[key] = (now, rules)
    return rules


def save_rules(session: Session, tenant_id: str, rules: Rules, *, actor_id: str) -> ChangeWindowSettings:
    """Store the tenant's rules (replacing any), and forget this process's cached copy."""
    row = session.get(ChangeWindowSettings, tenant_id) or ChangeWindowSettings(tenant_id=tenant_id, updated_by=actor_id)
    doc = rules_document(rules)
    row.mode = doc.pop("mode")
    row.max_wait_s = doc.pop("max_wait_s")
    row.rules_json = json.dumps(doc, sort_keys=True)
    row.updated_at = utcnow()
    row.updated_by = actor_id
    session.add(row)
    session.flush()
    clear_cache()
    return row


def clear_cache() -> None:
    """Forget every cached tenant's rules (after an edit in this process, and in tests)."""
    with _guard:
        _cache.clear()
