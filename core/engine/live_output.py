"""A running step's output, streamed to ``step_output_chunks`` in batches (issue 16 item 1).

The runner writes into its ``OutputSink`` (memory only, as before); the step's watcher calls ``tick()`` every
``watch_interval_s`` and, once the step has run for ``FLUSH_S`` and at most every ``FLUSH_S`` (sooner when
``FLUSH_BYTES`` more are held), appends what ``OutputSink.view()`` newly shows as one chunk, in a
transaction of its own. A step that ends before its first batch (a noop, any quick step) writes no chunk and
costs no statement: its output is stored on its step row, as before.

When the attempt ends, ``finish`` runs in the transaction that stores the step's result: it appends the
rest of the final output (``OutputSink.text()``, masked whole) so the attempt's chunks joined are exactly
its stored output; an attempt that will be retried keeps its output as chunks even if it never streamed
(so a retry never replaces it). What was written is never changed, except in one case: if the final text
does not start with what was shown (a value recognisable only as a whole, such as a multi-line secret with a
short line, printed across batches), the attempt's chunks are replaced by the final text.

Must not import anything above ``core.engine``.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import delete, insert
from sqlmodel import Session

from core.actions.context import OutputSink
from core.transactions import session_scope
from db.clock import utcnow
from db.tables import StepOutputChunk

FLUSH_S = 0.5
FLUSH_BYTES = 8 * 1024

_CHUNKS = StepOutputChunk.__table__  # type: ignore[attr-defined]

log = logging.getLogger(__name__)


class LiveOutput:
    """One attempt's streamed output: what was written so far, and the next chunk's number. Thread-safe."""

    def __init__(
        self,
        sink: OutputSink,
        *,
        execution_id: str,
        tenant_id: str,
        step_index: int,
        run: int,
        attempt: int,
        started: float,
    ) -> None:
        self._sink = sink
        self._key = {
            "execution_id": execution_id,
            "tenant_id": tenant_id,
            "step_index": step_index,
            "run": run,
            "attempt": attempt,
        }
        self._started = started
        self._last_flush = started
        self._last_held = 0
        self._written = ""  # the masked text the chunks hold, joined
        self._seq = 0
        self._diverged = False  # the view stopped extending what was written: nothing more until ``finish``
        self._closed = False
        self._lock = threading.Lock()

    @property
    def streamed(self) -> bool:
        """True once at least one chunk was written."""
        return self._seq > 0

    def tick(self, now: float | None = None) -> bool:
        """From the watcher: write a batch if one is due. Returns True if a chunk was written."""
        now = time.monotonic() if now is None else now
        if now - self._started < FLUSH_S:
            return False
        grown = self._sink.held - self._last_held
        if grown <= 0 or (now - self._last_flush < FLUSH_S and grown < FLUSH_BYTES):
            return False
        return self.flush(now)

    def flush(self, now: float | None = None) -> bool:
        """Append what the sink newly shows, in a transaction of its own. A database error is logged, not
        raised: the output is still stored whole when the attempt ends."""
        with self._lock:
            if self._closed or self._diverged:
                return False
            self._last_flush = time.monotonic() if now is None else now
            self._last_held = self._sink.held
            shown = self._sink.view()
            if not shown.startswith(self._written):
                self._diverged = True
                log.warning("the live output of step %s diverged; it is stored when the step ends", self._key)
                return False
            delta = shown[len(self._written) :]
            if not delta:
                return False
            try:
                with session_scope() as session:
                    session.execute(insert(_CHUNKS).values(**self._key, seq=self._seq, text=delta, created_at=utcnow()))
            except Exception:
                log.warning("could not write the live output of step %s", self._key, exc_info=True)
                return False
            self._written, self._seq = shown, self._seq + 1
            return True

    def finish(self, session: Session, final: str | None, *, keep: bool = False) -> None:
        """In the transaction storing the attempt's result: complete its chunks with the ``final`` output.

        Writes nothing for an attempt that never streamed, unless ``keep`` (it will be retried: its output
        must outlive the next attempt's).
        """
        with self._lock:
            self._closed = True
            final = final or ""
            if not self.streamed and not (keep and final):
                return
            if final.startswith(self._written):
                if delta := final[len(self._written) :]:
                    self._append(session, self._seq, delta)
                return
            # What was shown is not a prefix of the output masked whole: replace it (see the module docstring).
            session.execute(delete(_CHUNKS).where(*(_CHUNKS.c[name] == value for name, value in self._key.items())))
            self._append(session, self._seq, final)

    def discard(self, session: Session) -> None:
        """The attempt is handed back untouched (worker shutdown): its number is used again, its chunks go."""
        with self._lock:
            self._closed = True
            if self.streamed:
                session.execute(delete(_CHUNKS).where(*(_CHUNKS.c[name] == value for name, value in self._key.items())))

    def _append(self, session: Session, seq: int, text: str) -> None:
        session.execute(insert(_CHUNKS).values(**self._key, seq=seq, text=text, created_at=utcnow()))
