"""``opsconductor show`` as a real process on a SQLite file (issue 15): it reads over a plain DB-API connection,
never importing SQLAlchemy or SQLModel, and prints exactly what the ORM path prints, as text and as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import approve, create_token, principal, submit
from tests.cli.support import MODIFY_PLAN

REPO = Path(__file__).resolve().parents[2]
LAYER = ("sqlalchemy", "sqlmodel")

# Runs the CLI like the console script; THROUGH_ORM=1 makes the direct reader step aside, as it does for a
# database it cannot read (db/dbapi.py), so the ORM path prints. At exit: which of LAYER were imported.
WRAPPER = (
    "import atexit, json, os, sys\n"
    f"atexit.register(lambda: print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {LAYER!r})),"
    " file=sys.__stderr__))\n"
    "if os.environ.get('THROUGH_ORM') == '1':\n"
    "    import core\n"
    "    def refuse():\n"
    "        raise core.DirectReadUnavailable('test: through the ORM')\n"
    "    core.direct_reader = refuse\n"
    "sys.argv = ['opsconductor', *sys.argv[1:]]\n"
    "from ui.cli import main\n"
    "main()\n"
)


def show(args: list[str], url: str, *, through_orm: bool = False, token: str | None = None) -> tuple[str, list[str]]:
    """``show ARGS`` in a fresh interpreter: (stdout, the database-layer modules it imported). Fails on exit != 0."""
    env = {**os.environ, "OPSC_DATABASE_URL": url, "OPSC_REDIS_URL": "", "THROUGH_ORM": "1" if through_orm else ""}
    env.pop("OPSC_TOKEN", None)
    if token is not None:
        env["OPSC_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, "show", *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout, json.loads(done.stderr.strip().splitlines()[-1])


@pytest.fixture
def rerun(sqlite_db: str) -> str:
    """A pending second run of an approved plan, with a change: steps, approvals, a diff, a dry run to print."""
    first = submit(principal("alice", "demo"), MODIFY_PLAN, idempotency_key="one").execution.execution_id
    approve(principal("bob", "demo"), first, comment="ok")
    changed = MODIFY_PLAN.replace("ls /tmp", "ls /var/tmp")
    return submit(principal("alice", "demo"), changed, idempotency_key="two").execution.execution_id


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_show_imports_no_database_layer_and_prints_what_the_orm_path_prints(
    sqlite_db: str, rerun: str, json_out: bool
) -> None:
    """``show ID --as alice`` (and ``--json``): no SQLAlchemy or SQLModel, the same bytes as through the ORM."""
    args = [rerun, "--as", "alice", *(["--json"] if json_out else [])]
    direct, loaded = show(args, sqlite_db)
    through_orm, orm_loaded = show(args, sqlite_db, through_orm=True)
    assert loaded == []
    assert "sqlalchemy" in orm_loaded  # the comparison is with the ORM path indeed
    assert direct == through_orm
    assert "changed since the last approved run" in direct or json.loads(direct)["changes_since_approved"]


def test_a_token_reads_directly_once_its_last_use_is_recorded(sqlite_db: str, rerun: str) -> None:
    """A token's first ``show`` takes the ORM path, which records its use (a write, at most once a minute);
    the next reads directly, and both print the same."""
    _view, value = create_token(principal("alice", "demo"), name="cli", scopes="read", expires_in_s=3600)
    first, first_loaded = show([rerun], sqlite_db, token=value)
    second, second_loaded = show([rerun], sqlite_db, token=value)
    assert "sqlalchemy" in first_loaded and second_loaded == []
    assert first == second


def test_a_database_url_the_direct_reader_does_not_take_falls_back_to_the_orm(sqlite_db: str, rerun: str) -> None:
    """A SQLite URL with driver options is the ORM's to read: ``show`` still works, and prints the same."""
    direct, _loaded = show([rerun, "--as", "alice", "--json"], sqlite_db)
    fallback, loaded = show([rerun, "--as", "alice", "--json"], f"{sqlite_db}?timeout=20")
    assert "sqlalchemy" in loaded
    assert fallback == direct
