"""Each attempt's output from its chunks and the step rows: one rule for the ORM read and the one-shot reader.

``core.list_attempt_outputs`` (core/reads/step_output.py, through a Session) and the CLI's ``show`` without
the ORM (core/reads/direct.py) fetch the same columns their own way and join them here, so the console and
``show --json`` list the same attempts with the same text (issue 16 item 5: one attempt count everywhere).

Must not import SQLAlchemy, SQLModel or db/tables.py (the one-shot reader imports it).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from core.schemas import AttemptOutputView

# (step_index, attempts, output) of a step row; (step_index, run, attempt, seq, text) of a chunk row.
StepOutputRow = tuple[int, int, str | None]
ChunkRow = tuple[int, int, int, int, str]


def join_attempt_outputs(
    steps: Iterable[StepOutputRow], chunks: Iterable[ChunkRow], run: int
) -> list[AttemptOutputView]:
    """Each attempt that has output, by step, run and attempt: its chunks joined in order, or, for the current
    attempt of ``run`` (the execution's) that never streamed, the step row's output."""
    steps = list(steps)
    current = {index: attempts for index, attempts, _ in steps}
    found: dict[tuple[int, int, int], str] = {}
    for key, parts in groupby(sorted(chunks, key=lambda c: c[:4]), key=lambda c: c[:3]):
        found[key] = "".join(part[4] for part in parts)
    for index, attempts, output in steps:
        key = (index, run, attempts)
        if output and attempts > 0 and key not in found:
            found[key] = output
    return [
        AttemptOutputView(
            step_index=index,
            run=at_run,
            attempt=attempt,
            output=text,
            latest=at_run == run and attempt == current.get(index),
        )
        for (index, at_run, attempt), text in sorted(found.items())
    ]
