"""Structured logs: the context every log record carries, and the JSON format (``OPSC_LOG_FORMAT``).

- ``log_context(execution_id=…, step=…)`` binds fields for the code it wraps (contextvars: per thread
  and per task; a new thread starts empty unless started with ``contextvars.copy_context().run``).
  The engine binds the execution, step, tenant, actor, worker and a trace id while it processes a step.
- ``bind_process(worker=…)``: defaults for the whole process (a worker's id), used where no context is bound.
- ``JsonFormatter`` writes one JSON object per record with every field of ``FIELDS`` (null when unknown).
- ``configure_logging(fmt)``: ``json`` puts the formatter on every handler; ``text`` keeps the formats
  as they are. Both (re)install the masking filter, so every record is masked before it is formatted.

Standard library only. Must not import dramatiq, redis or streamlit.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from core.safety.masking import install_log_masking, mask_text

FIELDS = ("execution_id", "step", "tenant", "actor", "worker", "trace_id")

_context: ContextVar[dict[str, Any] | None] = ContextVar("opsc_log_context", default=None)
_process_fields: dict[str, Any] = {}


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise TypeError(f"unknown log context fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
    return fields


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (names from ``FIELDS``) to every record logged inside the block; nested blocks add up."""
    token = _context.set({**(_context.get() or {}), **_checked(fields)})
    try:
        yield
    finally:
        _context.reset(token)


def bind_process(**fields: Any) -> None:
    """Process-wide defaults for records logged outside any ``log_context`` (e.g. this worker's id)."""
    _process_fields.update(_checked(fields))


def set_trace_id(trace_id: str | None) -> None:
    """Bind (or clear) the trace id of the current thread's message, until it is set again."""
    _context.set({**(_context.get() or {}), "trace_id": trace_id})


def current_trace_id() -> str:
    """The trace id bound here (the broker message's id), or a fresh one."""
    bound = (_context.get() or {}).get("trace_id")
    return str(bound) if bound else uuid.uuid4().hex


def current_fields() -> dict[str, Any]:
    """Every field of ``FIELDS`` as bound now (context first, then process defaults), None when unknown."""
    bound = _context.get() or {}
    return {name: bound.get(name, _process_fields.get(name)) for name in FIELDS}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the context ``FIELDS``, process, thread.

    A field passed with ``extra=`` wins over the context. The message and exception text are masked
    again here, so a handler that missed ``install_log_masking`` still leaks nothing.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = current_fields()
        for name in FIELDS:
            if name in record.__dict__:
                fields[name] = record.__dict__[name]
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
            **fields,
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = mask_text(record.exc_text)
        if record.stack_info:
            entry["stack"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(entry, default=str, ensure_ascii=False)


_JSON = JsonFormatter()


def configure_logging(fmt: str = "text") -> int:
    """Apply ``OPSC_LOG_FORMAT`` to this process's logging and install the masking filter everywhere.

    ``json``: every handler of every logger formats JSON; if the root logger has no handler (nobody
    configured logging), a stderr handler at INFO is added. ``text``: formats are left as they are.
    Idempotent; call it at process start and again after something adds handlers.

    Returns:
        How many handlers the masking filter covers.

    Raises:
        ValueError: ``fmt`` is neither ``text`` nor ``json``.
    """
    if fmt not in {"text", "json"}:
        raise ValueError(f"log format must be text or json, not {fmt!r}")
    if fmt == "json":
        root = logging.getLogger()
        if not root.handlers:
            root.addHandler(logging.StreamHandler(sys.stderr))
            root.setLevel(logging.INFO)
        for logger in [root, *logging.Logger.manager.loggerDict.values()]:
            for handler in getattr(logger, "handlers", []):
                handler.setFormatter(_JSON)
    return install_log_masking()
