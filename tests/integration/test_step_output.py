"""Step output on both databases: binary and NUL bytes are stored (replaced), and a huge output is capped
without the sink masking what it throws away."""

from __future__ import annotations

from core import approve, get_execution, principal, submit
from core.actions.context import MAX_OUTPUT_BYTES, OutputSink
from core.safety.masking import Masker
from tests.engine_support import drive

BINARY = (
    "name: binary\nsteps:\n  - name: emit\n    action: shell\n    target: localhost\n"
    "    params: {command: [python3, -c, \"import sys; sys.stdout.buffer.write(b'a\\\\x00b\\\\xffc')\"]}\n"
)


def test_nul_and_non_utf8_bytes_do_not_fail_the_save(db: str) -> None:
    execution_id = submit(principal("alice", "demo"), BINARY, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)  # `python3 -c` is modify: nobody declared it read-only
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "completed", view.error
    output = view.steps[0].output or ""
    assert output.startswith("a") and "\x00" not in output and output.endswith("c")


class CountingMasker(Masker):
    def __init__(self) -> None:
        super().__init__()
        self.register("s3cr3t")
        self.calls = 0

    def mask(self, text: str | None) -> str | None:
        self.calls += 1
        return super().mask(text)


def test_a_full_sink_counts_without_masking_and_keeps_the_first_bytes_masked() -> None:
    masker = CountingMasker()
    sink = OutputSink(masker)
    sink.write("token s3cr3t\n")
    for _ in range(1000):
        sink.write("x" * 1024)
    text = sink.text()
    masker.close()  # its value leaves the process-wide live set, which the canary test checks is empty
    assert text.startswith("token ***\n") and "s3cr3t" not in text
    assert len(text.split("\n… ")[0].encode()) == MAX_OUTPUT_BYTES
    assert masker.calls < 20  # only the writes that could still be stored were masked
    dropped = int(text.rsplit("\n… ", 1)[1].split()[0])
    assert dropped == len("token ***\n") + 1000 * 1024 - MAX_OUTPUT_BYTES
