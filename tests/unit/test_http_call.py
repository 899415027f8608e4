"""core/actions/http_call.send against a real loopback server: a stop ends the request on both sides at once,
and a body is held in memory only up to the cap. (No engine: the step context is built here.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from core.actions import http_call
from core.actions.context import OutputSink, StepContext
from core.safety.masking import Masker
from tests.http_service import JsonHandler, serving


class Holding(JsonHandler):
    """Never answers until released; records when the client closes its side (the server keeps its own open)."""

    release = threading.Event()
    entered = threading.Event()
    client_closed = threading.Event()

    def do_GET(self) -> None:
        self.entered.set()
        self.hold(self.release, self.client_closed)


@pytest.fixture
def holding() -> Iterator[str]:
    Holding.release.clear()
    Holding.entered.clear()
    Holding.client_closed.clear()
    with serving(Holding) as url:
        yield url
        Holding.release.set()


def _ctx(stop: threading.Event) -> StepContext:
    masker = Masker()
    return StepContext(
        execution_id="e1", step_index=0, params={}, asset=None, deadline=time.monotonic() + 60,  # type: ignore[arg-type]
        stop=stop, output=OutputSink(masker), masker=masker,
    )  # fmt: skip


def _in_flight() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "opsc-http"]


def test_a_stop_ends_the_request_thread_and_the_peer_sees_the_close(holding: str) -> None:
    """Closing the client alone left the request's thread blocked in recv until the peer answered (issue 14
    item 6); shutting the socket down wakes it at once, and the peer sees its connection closed."""
    stop = threading.Event()
    ctx = _ctx(stop)
    outcome: dict[str, BaseException] = {}

    def call() -> None:
        try:
            http_call.send(ctx, "GET", holding + "/hold", timeout_s=60)
        except BaseException as exc:
            outcome["raised"] = exc

    caller = threading.Thread(target=call)
    caller.start()
    assert Holding.entered.wait(timeout=20), "the request never reached the peer"
    stop.set()
    caller.join(timeout=20)
    assert not caller.is_alive()
    assert isinstance(outcome.get("raised"), http_call.Stopped) and outcome["raised"].why == "cancelled"  # type: ignore[attr-defined]
    assert _in_flight() == [], "the request thread is still blocked while the peer holds its answer"
    assert Holding.client_closed.wait(timeout=10), "the peer never saw the connection closed"
    assert not Holding.release.is_set()


class Big(JsonHandler):
    SIZE = 4 * http_call.MAX_BODY_BYTES

    def do_GET(self) -> None:
        self.answer_big(self.SIZE)


def test_a_body_is_kept_up_to_the_cap_and_the_rest_counted() -> None:
    with serving(Big) as url:
        response = http_call.send(_ctx(threading.Event()), "GET", url + "/", timeout_s=60)
    assert len(response.content) == http_call.MAX_BODY_BYTES
    assert http_call.dropped_bytes(response) == Big.SIZE - http_call.MAX_BODY_BYTES
