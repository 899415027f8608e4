"""Database URLs read the way SQLAlchemy reads them, without importing it.

``parse_database_url`` uses SQLAlchemy's own pattern (``sqlalchemy.engine.url._parse_url``): a one-shot
read (db/dbapi.py) and the key file's place (core/safety/key_file.py) must find the same database and file
that the engine does, and a command that needs neither the ORM nor a session should not pay 0.5 s of CPU for
SQLAlchemy to tell it where a file is (issue 15). tests/unit/test_database_urls.py compares the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

_URL = re.compile(
    r"""
        (?P<name>[\w\+]+)://
        (?:
            (?P<username>[^:/]*)
            (?::(?P<password>[^@]*))?
        @)?
        (?:
            (?:
                \[(?P<ipv6host>[^/\?]+)\] |
                (?P<ipv4host>[^/:\?]+)
            )?
            (?::(?P<port>[^/\?]*))?
        )?
        (?:/(?P<database>[^\?]*))?
        (?:\?(?P<query>.*))?
    """,
    re.X,
)


@dataclass(frozen=True)
class DatabaseUrl:
    """The parts of a database URL (user, password and database percent-decoded, as SQLAlchemy has them)."""

    drivername: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    # A key given several times keeps its last value (SQLAlchemy makes a list; no setting of ours repeats one).
    query: dict[str, str] = field(default_factory=dict)
    # The keys given several times: a reader that cannot mean what SQLAlchemy means by the list refuses them.
    repeated: frozenset[str] = frozenset()

    @property
    def backend(self) -> str:
        """``postgresql`` of ``postgresql+psycopg2``."""
        return self.drivername.split("+", 1)[0]

    @property
    def driver(self) -> str | None:
        """``psycopg2`` of ``postgresql+psycopg2``; None when the URL names none (the dialect's default)."""
        parts = self.drivername.split("+", 1)
        return parts[1] if len(parts) == 2 else None


def parse_database_url(url: str) -> DatabaseUrl:
    """The parts of ``url``. Raises ValueError for what SQLAlchemy could not parse either."""
    match = _URL.match(url)
    if match is None:
        raise ValueError("not a database URL")
    parts = match.groupdict()
    port = parts["port"]
    pairs = parse_qsl(parts["query"]) if parts["query"] is not None else []
    keys = [key for key, _value in pairs]
    return DatabaseUrl(
        drivername=parts["name"],
        username=unquote(parts["username"]) if parts["username"] is not None else None,
        password=unquote(parts["password"]) if parts["password"] is not None else None,
        host=parts["ipv4host"] or parts["ipv6host"],
        port=int(port) if port is not None else None,  # "h:/d": ValueError, as in make_url
        database=unquote(parts["database"]) if parts["database"] is not None else None,
        query=dict(pairs),
        repeated=frozenset(key for key in keys if keys.count(key) > 1),
    )
