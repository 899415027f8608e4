"""The credential detector's command-line and embedded forms (issue 13 item 7), refused at submit by path.

``--password X`` as two argv elements, ``-pX`` after mysql, ``sshpass -p X``, ``curl -u user:pass``,
``MYSQL_PWD``-style env keys and inline assignments, and ``"token": "…"`` inside a string parameter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.errors import InvalidInput
from core.plans import parse_plan
from core.safety.credentials import find_literal_credentials

SECRET = "Hunter2x9"


def shell_plan(params: dict[str, Any]) -> dict[str, Any]:
    return {"name": "p", "steps": [{"name": "s", "action": "shell", "target": "localhost", "params": params}]}


REFUSED = [
    ({"command": ["mysql", "--password", SECRET]}, "command[2]"),
    ({"command": ["gh", "--token", SECRET, "repo", "list"]}, "command[2]"),
    ({"command": ["vault", "--secret", SECRET]}, "command[2]"),
    ({"command": ["tool", "--API-KEY", SECRET]}, "command[2]"),
    ({"command": f"gh --token {SECRET} repo list"}, "command"),
    ({"command": ["/usr/bin/mysql", "-u", "root", f"-p{SECRET}", "db"]}, "command[3]"),
    ({"command": f"mysqldump -u root -p{SECRET} db"}, "command"),
    ({"command": ["sshpass", "-p", SECRET, "ssh", "host"]}, "command[2]"),
    ({"command": ["curl", "-u", f"bob:{SECRET}", "https://x.invalid"]}, "command[2]"),
    ({"command": ["curl", f"--user=bob:{SECRET}", "https://x.invalid"]}, "command[1]"),
    ({"command": f"curl -sS -u bob:{SECRET} https://x.invalid | jq ."}, "command"),
    ({"command": f"curl -ubob:{SECRET} https://x.invalid"}, "command"),
    ({"command": ["mysql"], "env": {"MYSQL_PWD": SECRET}}, "env.MYSQL_PWD"),
    ({"command": ["psql"], "env": {"PGPASSWORD": SECRET}}, "env.PGPASSWORD"),
    ({"command": ["app"], "env": {"REDIS_PASSWORD": SECRET}}, "env.REDIS_PASSWORD"),
    ({"command": ["app"], "env": {"GITLAB_TOKEN": SECRET}}, "env.GITLAB_TOKEN"),
    ({"command": f"MYSQL_PWD={SECRET} mysql -e 'select 1'", "shell": True}, "command"),
    ({"command": f"DB_PASSWORD={SECRET} ./migrate"}, "command"),
    ({"command": ["curl", "-d", json.dumps({"user": "bob", "token": SECRET}), "https://x.invalid"]}, "command[2]"),
    ({"command": ["app"], "stdin": json.dumps({"api_token": SECRET})}, "stdin"),
    ({"command": ["app"], "stdin": f"user: bob\ndb_password: {SECRET}\n"}, "stdin"),
    ({"command": ["app"], "stdin": f"{{'client_secret': '{SECRET}'}}"}, "stdin"),
]


@pytest.mark.parametrize(("params", "path"), REFUSED, ids=[f"{i}-{p}" for i, (_v, p) in enumerate(REFUSED)])
def test_each_form_is_refused_at_submit_with_the_path_of_the_value(params: dict[str, Any], path: str) -> None:
    """parse_plan (what submit runs) refuses it; the issue names the value's path and never the value."""
    with pytest.raises(InvalidInput) as caught:
        parse_plan(shell_plan(params))
    paths = [p for p, _message in caught.value.issues]
    assert paths == [f"steps[0].params.{path}"]
    assert SECRET not in caught.value.message


ACCEPTED = [
    "ls -p /tmp",
    ["ls", "-p", "/tmp"],
    ["mysql", "--password-file", "/etc/mysql/pw"],
    "mysql --password-file /etc/mysql/pw",
    "gh --token-file=/run/token",
    ["mysql", "--password", "{{ secret:db }}"],
    ["mysql", "-p{{ secret:db }}"],
    ["mysql", "-p", "db"],  # prompts: "db" is the database
    "mysql -P3306 -h db",
    ["sshpass", "-p", "{{ secret:ssh }}", "ssh", "host"],
    "curl -u bob:{{ secret:pw }} https://x.invalid",
    "curl -u bob https://x.invalid",
    "curl https://x.invalid; docker run -u 1000:1000 img",
    "docker run -u 1000:1000 img",
    "mysql --password $DB_PASS",
    "MYSQL_PWD=$DB_PASS mysql",
    "cd $PWD && ls",
]


@pytest.mark.parametrize("command", ACCEPTED)
def test_ordinary_commands_and_references_are_not_refused(command: str | list[str]) -> None:
    """Flags that look alike, files holding passwords, references and $VARIABLES pass."""
    assert find_literal_credentials({"command": command}, "params") == []
    parse_plan(shell_plan({"command": command}))


@pytest.mark.parametrize(
    "params",
    [
        {"env": {"MYSQL_PWD": "{{ secret:db }}", "PWD": "/srv", "OLDPWD": "/"}},
        {"stdin": json.dumps({"token": "{{ secret:t }}", "secret_name": "db", "max_tokens": 500})},
        {"stdin": json.dumps({"token": {"scope": "read"}})},
    ],
    ids=["env", "json-references", "json-nested"],
)
def test_env_and_embedded_text_with_references_pass(params: dict[str, Any]) -> None:
    """References inside env and embedded JSON are fine; PWD is a directory; a nested object is not a literal."""
    assert find_literal_credentials(params, "params") == []
