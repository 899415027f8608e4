"""A Redis namespace of a benchmark's own: named for the run, its keys deleted after it (the server is shared)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def scratch_namespace(redis_url: str, prefix: str) -> Iterator[str]:
    """Yield ``prefix-<random>`` and afterwards delete every key under it, and nothing else."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        yield namespace
    finally:
        import redis

        client = redis.Redis.from_url(redis_url)
        try:
            keys = list(client.scan_iter(match=f"{namespace}:*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
