"""Schema migrations (Alembic) driven from code: upgrade, downgrade, current and head revisions, drift check.

The scripts live in db/migrations; ``alembic.ini`` at the repository root points there for the alembic CLI.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import db.tables  # noqa: F401  (registers every table on SQLModel.metadata)
from db.engine import get_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config for ``url`` (default: the configured database)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", str(get_engine(url).url.render_as_string(hide_password=False)))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (idempotent at head)."""
    with get_engine(url).begin() as connection:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    """Downgrade the schema to ``revision``."""
    with get_engine(url).begin() as connection:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def head_revision() -> str:
    """The newest migration revision in the scripts."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(url: str | None = None) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_drift(url: str | None = None) -> list[object]:
    """Differences between the tables in code and the migrated database (empty = ``alembic check`` clean)."""
    with get_engine(url).connect() as connection:
        ctx = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(ctx, SQLModel.metadata))
