"""What a runner gets (StepContext) and gives back (ActionResult), and the capped, masked output sink."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.safety.masking import Masker
from core.schemas import AssetView

MAX_OUTPUT_BYTES = 10 * 1024
# The end of a shown text that a credential pattern (core/safety/credentials.py) could still continue from on
# the next line: a key word, then only separators (``password:`` then a newline, ``Bearer`` then a newline).
# Patterns that cross a line only do so through ``\s``; everything else a live view may show ends at a line.
_OPEN_TAIL = re.compile(
    r"(?i)(?:bearer|pass(?:word|wd|phrase)|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|pwd)"
    # Each run of blanks is followed by a required character or the end (never two starred runs side by side):
    # a step printing a key word and 100 KB of spaces must not make this backtrack polynomially.
    r"[\"']?[ \t\r\n]*(?:[=:][ \t\r\n]*)?(?:[\"'][ \t\r\n]*)?$"
)

log = logging.getLogger(__name__)


class OutputSink:
    """Collects a step's output and masks it *whole*: the first 10 KB of the masked text kept, the rest counted.

    Writes are held raw, in memory only, and nothing leaves the sink but ``text()``, which masks everything
    held at once: a secret split across writes (lines, chunks) is masked like one printed in one go, and the
    cap is applied to masked text, so it cannot leave half a secret visible. A step that prints more than
    ``2 * limit`` characters plus the masker's margin has the rest counted and dropped unseen; the held part
    is then masked as a head (``Masker.mask_head``), so a value cut off at its end is not shown either.
    """

    def __init__(self, masker: Masker, limit: int = MAX_OUTPUT_BYTES) -> None:
        self._masker = masker
        self._limit = limit
        self._parts: list[str] = []
        self._held = 0  # characters held (raw)
        self._cut = False  # something was not held: what is held is the head of a longer output
        self._dropped = 0  # bytes not held
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """Append output (any size; held raw until ``text()`` masks it)."""
        if not text:
            return
        with self._lock:
            if self._held + len(text) > 2 * self._limit:
                # Enough to fill the cap even after masking shrinks it, plus what the masker needs to see a
                # value or credential crossing the cut whole; the rest is counted, never masked nor kept.
                room = max(0, 2 * self._limit + self._masker.margin - self._held)
                if len(text) > room:
                    self._dropped += len(text[room:].encode(errors="replace"))
                    self._cut = True
                    text = text[:room]
                if not text:
                    return
            self._parts.append(text)
            self._held += len(text)

    @property
    def held(self) -> int:
        """Characters held so far (raw): how much a live view has to look at."""
        return self._held

    def view(self) -> str:
        """What may be shown of the output so far, while the step still runs (a live view; issue 16 item 1).

        The held text is masked *whole*, as ``text()`` does, and shown up to the end of its last complete line
        (or, for a line longer than the masker's margin, up to that margin from its end, as ``mask_head``
        does): a secret or an encoding of it never spans a line boundary (a multi-line value is masked line
        by line too, ``forms_of``), so what is shown cannot be the first half of one whose rest comes later.
        A line ending in a credential's key word (``password:``) is held back with the next, which the
        pattern may take as its value. A match crossing the cut is shown as its ``***``. Capped like
        ``text()``; without a cut, ``view()`` is a prefix of every later ``view()`` and of ``text()``.
        """
        with self._lock:
            raw = "".join(self._parts)
            cut = self._cut
        if not raw:
            return ""
        line_end = max(raw.rfind("\n"), raw.rfind("\r")) + 1
        keep = max(line_end, len(raw) - self._masker.margin)
        if not cut and (open_tail := _OPEN_TAIL.search(raw, 0, keep)):
            keep = max(raw.rfind("\n", 0, open_tail.start()), raw.rfind("\r", 0, open_tail.start())) + 1
        masked = self._masker.mask_head(raw)[0] if cut else self._masker.mask_until(raw, keep)
        data = masked.replace("\x00", "\ufffd").encode(errors="replace")
        return data[: self._limit].decode("utf-8", errors="ignore")

    def text(self) -> str:
        """The kept output (masked whole, then capped), with a one-line summary of what was dropped."""
        with self._lock:
            raw = "".join(self._parts)
            cut, dropped = self._cut, self._dropped
        if cut:
            masked, withheld = self._masker.mask_head(raw)
            dropped += withheld
        else:
            masked = self._masker.mask(raw) or ""
        # NUL is valid UTF-8 but PostgreSQL text columns refuse it: binary output must not fail the save.
        data = masked.replace("\x00", "\ufffd").encode(errors="replace")
        body = data[: self._limit].decode("utf-8", errors="ignore")
        dropped += len(data) - len(body.encode())
        if dropped:
            body += f"\n… {dropped} more bytes not stored (limit {self._limit})"
        return body


@dataclass
class StepContext:
    """Everything a runner may use. ``params`` has secrets filled in: never persist or log them."""

    execution_id: str
    step_index: int
    params: dict[str, Any]
    asset: AssetView
    deadline: float  # time.monotonic() by which the step must end
    stop: threading.Event
    output: OutputSink
    masker: Masker
    dry_run: bool = False
    credential: str | None = None  # the asset's credential_ref, resolved (ssh password or key, http token)
    tenant_id: str = ""  # whose step this is: keys per-tenant state such as circuit breakers
    on_process: Callable[[int], None] | None = None  # records where a local process runs (core/engine/orphans.py)

    def started_process(self, pgid: int) -> None:
        """Say the step started the local process group ``pgid``, so recovery can find it if the worker is lost.

        A failure to record (the database is away) is logged, not raised: the process still dies with the
        worker; only the sweeper's second line of defence is missing for this step.
        """
        if self.on_process is None:
            return
        try:
            self.on_process(pgid)
        except Exception:  # noqa: BLE001
            log.warning("could not record process group %s of %s step %s", pgid, self.execution_id, self.step_index)

    def remaining_s(self) -> float:
        """Seconds until the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def should_stop(self) -> bool:
        """True once a cancel, timeout or shutdown has been requested, or the deadline has passed."""
        return self.stop.is_set() or time.monotonic() >= self.deadline

    def shown(self, value: Any) -> Any:
        """A copy of ``value`` (a string, list or mapping of them) with every string masked: what ``dry_run`` quotes.

        Mask first, then quote: shlex or repr turns ``ab'c`` into ``'ab'"'"'c'`` or ``"ab'c"``, in which the
        masker (matching the raw value and its encodings) no longer finds the secret (issue 13 item 7).
        """
        if isinstance(value, str):
            return self.masker.mask(value) or value
        if isinstance(value, list | tuple):
            return [self.shown(v) for v in value]
        if isinstance(value, dict):
            return {k: self.shown(v) for k, v in value.items()}
        return value


@dataclass
class ActionResult:
    """A runner's outcome. ``ok=False`` with ``error`` for a failure; ``stopped`` if it was interrupted."""

    ok: bool
    error: str | None = None
    exit_code: int | None = None
    stopped: bool = False
    data: dict[str, Any] = field(default_factory=dict)
