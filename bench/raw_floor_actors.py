"""The raw floor for bench/throughput.py: plain Dramatiq on the same Redis, one PostgreSQL insert per message.

Configured by BENCH_REDIS_URL, BENCH_NAMESPACE and BENCH_PG_DSN; run by `dramatiq bench.raw_floor_actors`.
"""

from __future__ import annotations

import os
import threading

import dramatiq
import psycopg2
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=os.environ["BENCH_NAMESPACE"])
dramatiq.set_broker(broker)
_local = threading.local()


def _connection() -> psycopg2.extensions.connection:
    if getattr(_local, "conn", None) is None:
        _local.conn = psycopg2.connect(os.environ["BENCH_PG_DSN"])
    return _local.conn


@dramatiq.actor(queue_name="raw", max_retries=0)
def insert_row(n: int) -> None:
    """One message = one committed insert: the least a durable step could cost."""
    conn = _connection()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO bench_raw (n) VALUES (%s)", (n,))
    conn.commit()
