"""Notifications from a real worker process (its delivery thread) on PostgreSQL and Redis: an approval waiting
reaches the webhook and the SMTP server without anyone in this process delivering; after approval, the
requester's opt-in hears of the end. Also the figure: submit-to-webhook latency."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlmodel import select

from core import add_email, add_webhook, approve, principal, submit, subscribe_email, wait_for
from db.engine import session_scope
from db.settings import get_settings
from db.tables import Notification
from tests.e2e.conftest import Cluster
from tests.factories import noop_plan
from tests.notify_support import Mailbox, Receiver, receiving, smtp_server

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def notifying(cluster: Cluster, mailbox: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    env = {"OPSC_NOTIFY_ALLOW_LOCAL": "1", "OPSC_SMTP_HOST": "127.0.0.1", "OPSC_SMTP_PORT": str(mailbox[1])}
    cluster.env.update(env)
    for name, value in env.items():  # this process only sets channels up (the same rules apply to it)
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield mailbox[0]
    get_settings.cache_clear()


def _until(done: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, "not delivered in time"
        time.sleep(0.02)


def test_a_worker_delivers_approval_and_finish_notifications(cluster: Cluster, notifying: Mailbox) -> None:
    admin, alice = principal("admin", "demo"), principal("alice", "demo")
    cluster.start_worker(processes=1, threads=2)
    cluster.wait_for_workers(1)
    with receiving(Receiver()) as receiver:
        add_webhook(admin, receiver.url)
        add_email(admin, "approvers@example.test")
        subscribe_email(alice, "alice@example.test")
        started = time.monotonic()
        execution = submit(alice, noop_plan("from-worker", level=1), background=True).execution
        _until(lambda: len(receiver.requests) == 1 and len(notifying.messages) == 1)
        latency_s = time.monotonic() - started
        assert receiver.requests[0].json["event"] == "approval_waiting"
        approve(principal("bob", "demo"), execution.execution_id)
        assert wait_for(alice, execution.execution_id, timeout_s=30).status == "completed"
        _until(lambda: len(notifying.messages) == 2)
    assert notifying.messages[1][0] == ["alice@example.test"]
    assert b"Finished: from-worker (demo)" in notifying.messages[1][1]
    assert len(receiver.requests) == 1  # the tenant webhook lists approval_waiting and dlq only
    print(f"submit -> webhook and email delivered by the worker: {latency_s * 1000:.0f} ms")

    with session_scope() as session:
        assert {n.status for n in session.exec(select(Notification)).all()} == {"delivered"}
