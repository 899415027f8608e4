"""Structured logs (core/logs.py): the JSON format, the context fields it carries, and masking."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from core import logs
from core.logs import FIELDS, JsonFormatter, bind_process, configure_logging, log_context, set_trace_id
from core.safety.masking import MASK, Masker, MaskingFilter

SECRET = "s3cr3t-VaLuE-42"


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own whose handler formats JSON behind the masking filter, like a configured process."""
    logs._process_fields.clear()  # an embedded worker started by an earlier test in this process bound its id
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("opsc.test.json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, buffer
    logger.removeHandler(handler)
    logs._process_fields.clear()


def _records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_record_has_every_field_null_when_unknown(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    """Outside any context: one JSON object per line with time, level, logger, message and null context."""
    logger, buffer = json_log
    logger.info("hello %s", "world")
    [record] = _records(buffer)
    assert record["message"] == "hello world" and record["level"] == "INFO" and record["logger"] == "opsc.test.json"
    assert str(record["ts"]).endswith("+00:00")
    assert {name: record[name] for name in FIELDS} == dict.fromkeys(FIELDS)


def test_context_fields_nest_and_end_with_their_block(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    """An inner block adds fields to the outer ones; leaving it restores the outer context."""
    logger, buffer = json_log
    with log_context(execution_id="e1", worker="w1", trace_id="t1"):
        with log_context(step=2, tenant="demo", actor="alice"):
            logger.info("inner")
        logger.info("outer")
    logger.info("after")
    inner, outer, after = _records(buffer)
    assert {k: inner[k] for k in FIELDS} == {
        "execution_id": "e1",
        "step": 2,
        "tenant": "demo",
        "actor": "alice",
        "worker": "w1",
        "trace_id": "t1",
    }
    assert (outer["execution_id"], outer["step"], outer["tenant"]) == ("e1", None, None)
    assert after["execution_id"] is None


def test_process_defaults_fill_in_and_extra_wins(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    """The worker id bound for the process shows on records outside a step; ``extra=`` overrides context."""
    logger, buffer = json_log
    bind_process(worker="worker:host:1")
    logger.info("heartbeat")
    with log_context(execution_id="e1"):
        logger.info("explicit", extra={"execution_id": "e2"})
    first, second = _records(buffer)
    assert first["worker"] == "worker:host:1" and second["worker"] == "worker:host:1"
    assert second["execution_id"] == "e2"


def test_context_is_per_thread(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    """A context bound in one thread does not leak into another thread's records."""
    logger, buffer = json_log
    with log_context(execution_id="mine"):
        thread = threading.Thread(target=logger.info, args=("other thread",))
        thread.start()
        thread.join()
    [record] = _records(buffer)
    assert record["execution_id"] is None


def test_trace_id_is_set_until_cleared(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    """The worker middleware binds the message id as trace id before a message and clears it after."""
    logger, buffer = json_log
    seen: list[str] = []

    def one_message() -> None:
        set_trace_id("msg-1")
        seen.append(logs.current_trace_id())
        logger.info("during")
        set_trace_id(None)
        logger.info("after")
        seen.append(logs.current_trace_id())

    thread = threading.Thread(target=one_message)  # a worker thread of its own, as in dramatiq
    thread.start()
    thread.join()
    during, after = _records(buffer)
    assert (during["trace_id"], after["trace_id"]) == ("msg-1", None)
    assert seen[0] == "msg-1" and len(seen[1]) == 32 and seen[1] != "msg-1"  # unbound: a fresh id per call


def test_secret_in_message_and_exception_comes_out_masked(json_log: tuple[logging.Logger, io.StringIO]) -> None:
    """A live secret value in the message (%-args and f-string) and in a traceback is masked in the JSON."""
    logger, buffer = json_log
    masker = Masker()
    masker.register(SECRET)
    try:
        logger.warning("using %s", SECRET)
        logger.warning(f"password is {SECRET}")
        try:
            raise RuntimeError(f"could not use {SECRET}")
        except RuntimeError:
            logger.exception("step failed")
    finally:
        masker.close()
    text = buffer.getvalue()
    assert SECRET not in text
    first, second, third = _records(buffer)
    assert first["message"] == f"using {MASK}" and second["message"] == f"password is {MASK}"
    assert "RuntimeError: could not use ***" in str(third["exception"])


def test_formatter_masks_even_behind_a_handler_without_the_filter() -> None:
    """Defence in depth: a handler added after install_log_masking still writes no live secret."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("opsc.test.unfiltered")
    logger.addHandler(handler)
    logger.propagate = False
    masker = Masker()
    masker.register(SECRET)
    try:
        logger.error("leak %s and Authorization: Bearer abcdefghijklmnopqrstuvwxyz", SECRET)
    finally:
        masker.close()
        logger.removeHandler(handler)
    assert SECRET not in buffer.getvalue() and "abcdefghijklmnop" not in buffer.getvalue()


def test_configure_json_formats_every_handler_and_keeps_the_masking_filter() -> None:
    """``configure_logging('json')`` puts the JSON formatter and the masking filter on existing handlers."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logger = logging.getLogger("opsc.test.configured")
    logger.addHandler(handler)
    logger.propagate = False
    everyone = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    before = {h: h.formatter for lg in everyone for h in getattr(lg, "handlers", [])}
    try:
        assert configure_logging("json") >= 1
        assert isinstance(handler.formatter, JsonFormatter)
        assert any(isinstance(f, MaskingFilter) for f in handler.filters)
        masker = Masker()
        masker.register(SECRET)
        with log_context(execution_id="e9"):
            logger.warning("value %s", SECRET)
        masker.close()
        record = json.loads(buffer.getvalue())
        assert record["execution_id"] == "e9" and record["message"] == f"value {MASK}"
    finally:
        for h, formatter in before.items():  # give pytest's own handlers their formats back
            h.setFormatter(formatter)
        logger.removeHandler(handler)


def test_configure_text_leaves_formats_alone_and_rejects_unknown_formats() -> None:
    """``text`` changes no format (humans keep what they had); anything else is an error."""
    handler = logging.StreamHandler(io.StringIO())
    plain = logging.Formatter("%(message)s")
    handler.setFormatter(plain)
    logger = logging.getLogger("opsc.test.text")
    logger.addHandler(handler)
    try:
        configure_logging("text")
        assert handler.formatter is plain
        with pytest.raises(ValueError, match="text or json"):
            configure_logging("yaml")
    finally:
        logger.removeHandler(handler)


def test_unknown_context_field_is_refused() -> None:
    """A typo in a field name fails loudly instead of silently logging nothing."""
    with pytest.raises(TypeError, match="execution"), log_context(execution="e1"):
        pass
