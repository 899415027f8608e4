"""Process configuration, read once from the environment (prefix ``OPSC_``).

It lives at the bottom layer so that every package may read it; it must not import anything of ours.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./opsconductor.db"
HIDDEN = "**********"
# Never in repr/str (logs, tracebacks, a debugger's locals); reading the attribute still gives the value.
_SECRET_FIELDS = frozenset({"secret_key", "vault_token", "session_key", "smtp_password"})


class Settings(BaseSettings):
    """Every knob of the product; see the README's Configuration section."""

    model_config = SettingsConfigDict(env_prefix="OPSC_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    secret_key: str | None = None
    secret_key_file: str | None = None
    idempotency_window_s: int = 24 * 3600
    max_plan_steps: int = 200
    max_plan_bytes: int = 256 * 1024
    # Job runner (DESIGN §3.2-3.5): retry backoff, the sweeper's rhythm, how fast a running step notices
    # a cancel or a deadline, and how long a queued message may be missing before it is sent again: a
    # message that old is re-sent only if the broker no longer holds it (``redispatch_ask_broker``; off:
    # the old rule, re-send whatever waited that long, kept for bench/redispatch.py's comparison).
    redis_namespace: str = "opsconductor"
    retry_backoff_s: float = 1.0
    retry_backoff_max_s: float = 60.0
    sweep_interval_s: float = 1.0
    redispatch_after_s: float = 15.0
    redispatch_ask_broker: bool = True
    # Priority (DESIGN §14, core/priority.py): one priority point counts as this many seconds of waiting.
    priority_step_s: float = 60.0
    watch_interval_s: float = 0.25
    worker_heartbeat_s: float = 2.0
    # Heartbeat leases (DESIGN §15): the watcher renews a running step's lease every ``heartbeat_s``; it
    # expires ``lease_ttl_s`` after the last renewal, so a dead worker's step is reclaimed within
    # lease_ttl_s + sweep_interval_s, whatever the step's timeout. ``outage_retry_s``: how long a worker
    # keeps retrying a claim or a step result while the database is unreachable before it gives up.
    heartbeat_s: float = Field(default=1.0, gt=0)
    lease_ttl_s: float = Field(default=4.0, gt=0)
    outage_retry_s: float = Field(default=120.0, ge=0)
    # The sweeper signs a checkpoint of each tenant's audit chain whose head moved, at most this often.
    audit_checkpoint_interval_s: float = 300.0
    # HashiCorp Vault as a secret backend (KV v2); unset = not used.
    vault_url: str | None = None
    vault_token: str | None = None
    vault_mount: str = "secret"
    # Console sign-in (core/usecases/accounts.py): lock-out after repeated bad passwords, idle session expiry, and
    # the approval level from which approving asks for the password again.
    login_max_failures: int = 5
    login_lockout_s: int = 15 * 60
    session_idle_s: int = 30 * 60
    # Console sessions that survive reload and a second tab (core/identity/console_sessions.py): signed with
    # the console's own key (never the secret store's, which workers hold too): ``OPSC_SESSION_KEY`` (at least
    # 32 characters), else a 0600 file (``OPSC_SESSION_KEY_FILE``, or next to the SQLite file, generated when
    # absent), else a key drawn per console process. However active, a session ends after ``session_max_s``.
    session_key: str | None = None
    session_key_file: str | None = None
    session_max_s: int = Field(default=12 * 3600, gt=0)
    reauth_approval_level: int = 2
    # External services (DESIGN §8): the seed system's automation service (the ``automation`` action) and
    # an optional asset service consulted for assets missing from the local inventory. Unset = not used.
    automation_url: str | None = None
    automation_timeout_s: float = 30.0
    asset_service_url: str | None = None
    asset_service_timeout_s: float = 5.0
    # A worker that completes a step claims the next one in the same transaction (core/engine/steps.py).
    chain_steps: bool = True
    # The console starts an embedded worker on the embedded default (off in UI tests, or behind workers).
    console_worker: bool = True
    # The GO/NO-GO check (core/ops/readiness.py, `opsconductor check`): NO-GO at this many open DLQ entries;
    # the largest clock difference tolerated between this host, the database and the workers; and the
    # rollout gates, judged per tenant over the last ``check_window_s`` once a tenant has at least
    # ``check_min_executions`` ended executions in it (fewer are NO-GO: not enough to judge).
    check_dlq_limit: int = 50
    check_max_clock_skew_s: float = 1.0
    check_window_s: int = 24 * 3600
    check_min_executions: int = 20
    check_max_error_rate: float = 0.05
    check_max_timeout_rate: float = 0.02
    check_max_cancel_rate: float = 0.10
    check_min_sla_attainment: float = 0.95
    # Observability (docs/operations.md "Metrics and logs"): the base port of the Prometheus endpoint (worker
    # process N of `opsconductor worker --processes K` serves base+N; an embedded runtime the base; unset =
    # no endpoint) and the address it binds; log records as text for humans or one JSON object per line.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_addr: str = "127.0.0.1"  # OPSC_METRICS_ADDR=0.0.0.0 to let another host scrape (containers do)
    # The address the console (`opsconductor up`) listens on; 0.0.0.0 to serve other hosts (containers do).
    console_addr: str = "127.0.0.1"
    log_format: Literal["text", "json"] = "text"
    # Step isolation (DESIGN §13, core/safety/runner.py). A root worker runs local steps as this
    # unprivileged user, created as a system user when missing (never root).
    runner_user: str = "opsc-runner"
    # Lab only: a worker that can neither switch user (not root) nor sandbox (no bubblewrap) runs local
    # steps as itself instead of refusing them; `check` reports NO-GO while this is on.
    allow_unconfined_steps: bool = False
    # Notifications (core/notify, docs/operations.md "Notifications"): the console's base URL for deep links;
    # the delivery thread's rhythm, attempts and backoff; how long one delivery may take; whether webhooks may
    # point at loopback, link-local or metadata addresses (off: refused, against SSRF; tests and labs turn it
    # on); and the SMTP server email goes through (unset: email channels fail their attempts, recorded).
    console_url: str = "http://127.0.0.1:8501"
    notify_interval_s: float = Field(default=1.0, gt=0)
    notify_max_attempts: int = Field(default=6, ge=1)
    notify_backoff_s: float = Field(default=5.0, ge=0)
    notify_backoff_max_s: float = Field(default=600.0, ge=0)
    notify_timeout_s: float = Field(default=5.0, gt=0)
    notify_allow_local: bool = False
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "opsconductor@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False

    @model_validator(mode="after")
    def _two_heartbeats_per_lease(self) -> Settings:
        # One missed renewal (a GC pause, a slow statement) must not lose a live worker's lease.
        if self.lease_ttl_s < 2 * self.heartbeat_s:
            raise ValueError(
                f"OPSC_LEASE_TTL_S ({self.lease_ttl_s}) must be at least twice OPSC_HEARTBEAT_S ({self.heartbeat_s})"
            )
        return self

    @property
    def reclaim_s(self) -> float:
        """The longest a dead worker's step waits to be reclaimed: its lease runs out, then a sweep finds it."""
        return self.lease_ttl_s + self.sweep_interval_s

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """What repr() and str() show: every field, but no key, token or password."""
        for name, value in super().__repr_args__():
            if name in _SECRET_FIELDS and value:
                yield name, HIDDEN
            elif name is not None and name.endswith("_url") and isinstance(value, str):
                yield name, url_without_password(value)
            else:
                yield name, value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def embedded(self) -> bool:
        """True when running on the embedded defaults (SQLite file, in-process broker)."""
        return self.is_sqlite and not self.redis_url


def url_without_password(url: str) -> str:
    """``url`` with the password of its user part replaced (``postgresql://opsc:***@db/opsc``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return HIDDEN  # not parseable: show nothing rather than something
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}:{HIDDEN}@{host}"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing the env."""
    return Settings()
