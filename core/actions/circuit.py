"""A circuit breaker per target: after repeated failures, calls fail fast until a cool-down has passed.

Closed → (``threshold`` consecutive failures) → open → (``cooldown_s`` later) half-open: one trial call;
its success closes the circuit, its failure opens it again. Process-local, thread-safe.

A target is one tenant's view of one endpoint (``target(tenant, url)``: scheme, host and port), so one
tenant's broken service neither blocks another tenant nor another port of the same host. Callers count as
failures only what says the endpoint is down (connection errors, 5xx), never a 4xx: that endpoint answered.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _State:
    failures: int = 0
    opened_at: float | None = None
    trial_running: bool = False


def target(tenant: str, url: str) -> str:
    """The breaker key of ``url`` for ``tenant``: its endpoint, shown as ``host:port (scheme)`` after the tenant."""
    import httpx  # on first use: see http_call

    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return f"{tenant}/{parsed.host}:{port} ({parsed.scheme})"


def shown(target_key: str) -> str:
    """A breaker key as users read it: the endpoint without the tenant."""
    return target_key.partition("/")[2] or target_key


class CircuitOpen(Exception):
    """Raised instead of calling a target whose circuit is open; says until when."""

    def __init__(self, target: str, retry_in_s: float) -> None:
        super().__init__(f"circuit open for {shown(target)}: {retry_in_s:.0f}s until the next trial call")
        self.target = target
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    def __init__(self, *, threshold: int = 5, cooldown_s: float = 30.0) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def before(self, target: str) -> None:
        """Raise CircuitOpen if ``target`` must not be called now (and reserve the half-open trial)."""
        with self._lock:
            state = self._states.setdefault(target, _State())
            if state.opened_at is None:
                return
            waited = time.monotonic() - state.opened_at
            if waited < self.cooldown_s or state.trial_running:
                raise CircuitOpen(target, max(0.0, self.cooldown_s - waited))
            state.trial_running = True  # half-open: this caller is the trial

    def success(self, target: str) -> None:
        with self._lock:
            self._states[target] = _State()

    def failure(self, target: str) -> None:
        with self._lock:
            state = self._states.setdefault(target, _State())
            state.failures += 1
            state.trial_running = False
            if state.opened_at is not None or state.failures >= self.threshold:
                state.opened_at = time.monotonic()

    def reset(self) -> None:
        """Forget every target (tests)."""
        with self._lock:
            self._states.clear()


BREAKER = CircuitBreaker()
