"""The engine's policy cache (core/policies.py ``cached_policy``) is per database: a process that reads two
databases within the cache's lifetime gets each one's own row (the suite runs every test on both)."""

from __future__ import annotations

from sqlalchemy import update

from core.policies import cached_policy, clear_policy_cache
from db.engine import session_scope
from db.tables import TimeoutPolicy
from tests.conftest import use_database


def test_two_databases_read_within_the_ttl_get_their_own_rows(sqlite_db: str, postgres_db: str) -> None:
    clear_policy_cache()
    use_database(postgres_db)
    with session_scope() as session:  # PostgreSQL's fast/read row differs from SQLite's seeded one
        session.execute(
            update(TimeoutPolicy)
            .where(TimeoutPolicy.sla_class == "fast", TimeoutPolicy.action_class == "read")  # type: ignore[arg-type]
            .values(step_s=3)
        )
    with session_scope() as session:
        on_postgres = cached_policy(session, "fast", "read").step_s
    use_database(sqlite_db)
    with session_scope() as session:
        on_sqlite = cached_policy(session, "fast", "read").step_s
    assert on_postgres == 3 and on_sqlite != 3
