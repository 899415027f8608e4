"""What a runner gets (StepContext) and gives back (ActionResult), and the capped, masked output sink."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from core.safety.masking import Masker
from core.schemas import AssetView

MAX_OUTPUT_BYTES = 10 * 1024


class OutputSink:
    """Collects a step's output: masked line by line, the first 10 KB kept, the rest counted."""

    def __init__(self, masker: Masker, limit: int = MAX_OUTPUT_BYTES) -> None:
        self._masker = masker
        self._limit = limit
        self._parts: list[str] = []
        self._kept = 0
        self._dropped = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """Append output (any size; masked before it is kept)."""
        with self._lock:
            if self._kept >= self._limit:
                # Full: count what is dropped without masking it (nothing of it is stored or shown).
                self._dropped += len(text.encode(errors="replace"))
                return
        # NUL is valid UTF-8 but PostgreSQL text columns refuse it: binary output must not fail the save.
        masked = (self._masker.mask(text) or "").replace("\x00", "\ufffd")
        with self._lock:
            room = self._limit - self._kept
            if room <= 0:
                self._dropped += len(masked.encode())
                return
            chunk = masked.encode()[:room].decode("utf-8", errors="ignore")
            self._parts.append(chunk)
            self._kept += len(chunk.encode())
            self._dropped += len(masked.encode()) - len(chunk.encode())

    def text(self) -> str:
        """The kept output, with a one-line summary of what was dropped."""
        with self._lock:
            body = "".join(self._parts)
            if self._dropped:
                body += f"\n… {self._dropped} more bytes not stored (limit {self._limit})"
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

    def remaining_s(self) -> float:
        """Seconds until the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def should_stop(self) -> bool:
        """True once a cancel, timeout or shutdown has been requested, or the deadline has passed."""
        return self.stop.is_set() or time.monotonic() >= self.deadline


@dataclass
class ActionResult:
    """A runner's outcome. ``ok=False`` with ``error`` for a failure; ``stopped`` if it was interrupted."""

    ok: bool
    error: str | None = None
    exit_code: int | None = None
    stopped: bool = False
    data: dict[str, Any] = field(default_factory=dict)
