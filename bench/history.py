"""History for bench/throughput.py: ``count`` completed executions, cloned on the server from one that ran.

Issue 15 asks for throughput with 20,000 executions of history within 10 % of an empty database. The clones are
made with ``INSERT … SELECT`` over ``generate_series`` (seconds for tens of thousands, where the engine would
take minutes): each copies the template's execution row (a new id and idempotency key, created a minute
earlier per clone), its steps and its events. The events stay off the audit chain (``chain_seq`` NULL): the
bench measures the hot path, not a verification of the trail.
"""

from __future__ import annotations

import time

import psycopg2

from db.tables import Execution, ExecutionEvent, ExecutionStep

# Per table: the columns given new values (SQL over the template row ``t`` and the clone number ``g``).
_CLONED = {
    Execution: {
        "id": "md5(t.id || ':' || g)",
        "idempotency_key": "'history-' || g",
        "created_at": "t.created_at - g * interval '1 minute'",
    },
    ExecutionStep: {"id": "md5(t.id || ':' || g)", "execution_id": "md5(t.execution_id || ':' || g)"},
    ExecutionEvent: {"execution_id": "md5(t.execution_id || ':' || g)", "chain_seq": "NULL", "prev_hash": "NULL"},
}
_KEY = {Execution: "id", ExecutionStep: "execution_id", ExecutionEvent: "execution_id"}


def clone_history(dsn: str, template_id: str, count: int) -> float:
    """Clone the completed execution ``template_id`` ``count`` times; returns the seconds it took."""
    started = time.monotonic()
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            for model, replaced in _CLONED.items():
                table = model.__table__  # type: ignore[attr-defined]
                columns = [c.name for c in table.columns if not (c.primary_key and c.autoincrement is True)]
                columns = [c for c in columns if not (model is ExecutionEvent and c == "id")]
                values = ", ".join(replaced.get(c, f"t.{c}") for c in columns)
                cur.execute(
                    f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {values}"  # noqa: S608  (our own names)
                    f" FROM {table.name} t, generate_series(1, %s) g WHERE t.{_KEY[model]} = %s",
                    (count, template_id),
                )
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
    finally:
        conn.close()
    return time.monotonic() - started
