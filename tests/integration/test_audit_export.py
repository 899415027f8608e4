"""Signed checkpoints and the SIEM export of a tenant's audit chain (core/ops/audit_checkpoints.py,
core/ops/audit_export.py): the sweeper signs chains that moved, the export round-trips, and a checkpoint
verifies with nothing but the published public key."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import timedelta
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select, text, update

from core import (
    PermissionDenied,
    Role,
    audit_checkpoint,
    audit_public_key,
    export_audit,
    principal,
    prune,
    set_member,
    submit,
    verify_chain,
)
from core.audit_links import EVENTS, EXECUTION, HEADS, TABLES
from core.engine.sweeper import sweep
from core.ops import audit_checkpoints
from db.clock import utcnow
from db.engine import session_scope
from db.tables import AuditCheckpoint, Execution
from tests.factories import noop_plan


def _admin() -> Any:
    return principal("admin", "demo")


def _run(name: str = "n") -> str:
    return submit(principal("alice", "demo"), noop_plan(name)).execution.execution_id


def _checkpoints() -> int:
    with session_scope() as session:
        return int(session.execute(select(func.count()).select_from(AuditCheckpoint)).scalar_one())


def _verify(public_pem: str, line: dict[str, Any]) -> bool:
    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(base64.b64decode(line["signature"]), line["payload"].encode("ascii"))
    except InvalidSignature:
        return False
    return True


def test_the_sweeper_signs_each_chain_that_moved_once_per_interval(db: str) -> None:
    """A tenant whose head moved gets a checkpoint; nothing new, or too soon, writes none."""
    _run()
    assert sweep().checkpoints == 1  # demo moved; globex has no chain yet
    assert sweep().checkpoints == 0  # nothing new
    set_member(_admin(), "erin", Role.OPERATOR)
    assert audit_checkpoints.write_due(3600) == 0  # moved, but the newest checkpoint is recent
    assert audit_checkpoints.write_due(0) == 1
    report = verify_chain(_admin())
    assert report.intact and report.checkpoints == 2 and report.checkpoint_seq == report.head_seq


def test_a_checkpoint_is_not_signed_over_a_tampered_head(db: str) -> None:
    """The writer checks the head against its link before signing: a rewritten head gets no signature."""
    _run()
    with session_scope() as session:
        session.execute(update(HEADS).values(hash="0" * 64))
    assert audit_checkpoints.write_due(0) == 0
    assert _checkpoints() == 0


def test_the_export_round_trips_and_its_checkpoints_verify_with_the_public_key(db: str) -> None:
    """Every line parses; the links are the chain, in order, hash-linked; each checkpoint's signature verifies
    with the header's public key (the same as ``audit_public_key``), and fails on an altered payload."""
    _run("a")
    set_member(_admin(), "erin", Role.OPERATOR)
    first = audit_checkpoint(_admin())
    _run("b")
    second = audit_checkpoint(_admin())
    assert first is not None and second is not None and second.seq > first.seq
    lines = [json.loads(json.dumps(line)) for line in export_audit(_admin())]
    header, links, checkpoints = lines[0], lines[1:-2], lines[-2:]
    assert header["type"] == "header" and header["tenant"] == "demo" and header["public_key"] == audit_public_key()
    assert [line["type"] for line in links] == ["link"] * len(links)
    assert [line["seq"] for line in links] == list(range(1, header["head_seq"] + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(links))
    assert {line["source"] for line in links} == {"execution", "admin"}
    assert [c["seq"] for c in checkpoints] == [first.seq, second.seq]
    assert all(_verify(header["public_key"], c) for c in checkpoints)
    assert all(json.loads(c["payload"])["head_hash"] == links[c["seq"] - 1]["hash"] for c in checkpoints)
    forged = {**checkpoints[0], "payload": checkpoints[0]["payload"].replace('"event_count":', '"event_count":1')}
    assert not _verify(header["public_key"], forged)


def test_the_export_ships_incrementally(db: str) -> None:
    """``since_seq`` gives the links after it and the checkpoints from it on: nothing twice, nothing lost."""
    _run("a")
    cp = audit_checkpoint(_admin())
    assert cp is not None
    _run("b")
    later = list(export_audit(_admin(), since_seq=cp.seq))
    links = [line for line in later if line["type"] == "link"]
    assert links[0]["seq"] == cp.seq + 1 and links[-1]["seq"] == later[0]["head_seq"]
    assert [line["seq"] for line in later if line["type"] == "checkpoint"] == [cp.seq]


def test_export_and_checkpoint_are_for_the_tenants_admins(db: str) -> None:
    _run()
    with pytest.raises(PermissionDenied):
        list(export_audit(principal("alice", "demo")))
    with pytest.raises(PermissionDenied):
        audit_checkpoint(principal("alice", "demo"))
    assert [line["type"] for line in export_audit(principal("admin", "globex"))] == ["header"]


def test_pruning_keeps_the_chain_verifiable_and_tampering_still_shows(db: str) -> None:
    """Retention removes an execution's links; its ``pruned`` link vouches for exactly those gaps. Deleting
    another link afterwards is still a gap, and editing what the pruned link vouches for breaks it."""
    old, kept = _run("old"), _run("kept")
    checkpoint = audit_checkpoint(_admin())
    with session_scope() as session:
        session.execute(
            update(Execution).where(Execution.id == old).values(finished_at=utcnow() - timedelta(days=40))  # type: ignore[arg-type]
        )
    assert prune(_admin(), timedelta(days=30)).executions == 1
    report = verify_chain(_admin())
    assert report.intact and report.pruned_executions == 1, report.breaks
    assert checkpoint is not None and report.checkpoint_seq == checkpoint.seq  # still reached, across the gap
    with session_scope() as session:
        marker = session.execute(select(EVENTS).where(EVENTS.c.execution_id == old)).one()
        victim = session.execute(
            select(EVENTS.c.id, EVENTS.c.chain_seq).where(EVENTS.c.execution_id == kept).order_by(EVENTS.c.chain_seq)
        ).all()[1]
    assert json.loads(marker.data_json)["removed_links"][0][0] == 1
    with session_scope() as session:
        session.execute(text("DELETE FROM execution_events WHERE id = :id"), {"id": victim.id})
    report = verify_chain(_admin())
    found = [(b.problem, b.seq) for b in report.breaks]
    # The gap itself; the next status change, whose from-status the deleted one set, may be named as well.
    assert found[0] == ("deleted", victim.chain_seq) and {problem for problem, _ in found} <= {"deleted", "inserted"}
    with session_scope() as session:  # widen what the pruned link vouches for, to hide the deletion
        data = json.loads(marker.data_json)
        data["removed_links"].append([victim.chain_seq, victim.chain_seq, "0" * 64])
        session.execute(
            update(TABLES[EXECUTION]).where(EVENTS.c.id == marker.id).values(data_json=json.dumps(data, sort_keys=True))
        )
    problems = {(b.problem, b.event_id) for b in verify_chain(_admin()).breaks}
    assert ("modified", marker.id) in problems and ("deleted", None) in problems
