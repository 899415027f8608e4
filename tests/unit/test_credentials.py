"""core.safety.credentials: secret references and literal-credential detection, tested directly."""

from __future__ import annotations

from typing import Any

import pytest

from core.safety.credentials import find_literal_credentials, secret_refs

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

# --- secret_refs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("{{ secret:db }}", {"db"}),
        ("{{secret:db}}", {"db"}),
        ("{{   secret:db\t}}", {"db"}),
        ("{{ secret: db }}", {"db"}),
        ("user={{ secret:u }} pass={{ secret:p }}", {"u", "p"}),
        ("{{ secret:a.b-c_9 }}", {"a.b-c_9"}),
        ("{{ secret:_x }}", {"_x"}),
    ],
)
def test_secret_refs_finds_names_with_and_without_inner_spaces(text: str, names: set[str]) -> None:
    assert secret_refs(text) == names


@pytest.mark.parametrize(
    "text",
    [
        "{{ secrets:db }}",
        "{ secret:db }",
        "{{ secret:9db }}",
        "{{ secret: }}",
        "secret:db",
        "plain",
    ],
)
def test_secret_refs_ignores_what_is_not_a_reference(text: str) -> None:
    assert secret_refs(text) == set()


def test_secret_refs_walks_nested_dicts_lists_and_tuples() -> None:
    value = {"a": ["{{ secret:one }}", {"b": ("x", "{{secret:two}}")}], "c": {"d": {"e": "{{ secret:three }}"}}, "n": 5}
    assert secret_refs(value) == {"one", "two", "three"}


def test_secret_refs_ignores_keys_and_non_strings() -> None:
    assert secret_refs({"{{ secret:key }}": 1, "b": None, "c": True, "d": 2.5}) == set()


# --- find_literal_credentials: refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "where", "secret"),
    [
        ({"DB_PASSWORD": "hunter2"}, "p.DB_PASSWORD", "hunter2"),
        ({"db-password": "hunter2"}, "p.db-password", "hunter2"),
        ({"api_key": "k3yv4lu3"}, "p.api_key", "k3yv4lu3"),
        ({"ApiKey": "k3yv4lu3"}, "p.ApiKey", "k3yv4lu3"),
        ({"GITHUB_TOKEN": "abc"}, "p.GITHUB_TOKEN", "abc"),
        ({"client_secret": "cs-1"}, "p.client_secret", "cs-1"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "p.Authorization", "dXNlcjpwYXNz"),
        ({"password": 123456}, "p.password", "123456"),
        ({"env": {"PGPASSWORD": "hunter2"}}, "p.env.PGPASSWORD", "hunter2"),
        ({"MYSQLPASSWORD": "hunter2"}, "p.MYSQLPASSWORD", "hunter2"),
        ({"ssh_passphrase": "open sesame"}, "p.ssh_passphrase", "open sesame"),
    ],
)
def test_sensitive_key_with_literal_value_is_refused(value: dict[str, Any], where: str, secret: str) -> None:
    found = find_literal_credentials(value, "p")
    assert [path for path, _reason in found] == [where]
    assert secret not in found[0][1]


@pytest.mark.parametrize(
    ("text", "label", "secret"),
    [
        ("aws configure set aws_access_key_id AKIAIOSFODNN7EXAMPLE", "aws access key", "AKIAIOSFODNN7EXAMPLE"),
        (
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
            "private key block",
            "MIIEvQIBADANBg",
        ),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key block", "OPENSSH PRIVATE"),
        ("Authorization: Bearer Zx9QvR7mTb3LpK2wYs8Nd4Hc", "bearer token", "Zx9QvR7mTb3LpK2wYs8Nd4Hc"),
        ("git clone https://bob:pa55word@git.example.com/r.git", "url with user:password", "pa55word"),
        ("psql password=xyzzy", "password assignment", "xyzzy"),
        ("run --token: abcdef", "password assignment", "abcdef"),
        ("mysql --password xyzzy", "password flag", "xyzzy"),
        (
            "gh auth ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            "github token",
            "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
        ),
        ("xoxb-1234567890-abcdefghij", "slack token", "xoxb-1234567890-abcdefghij"),
        (f"curl -d {JWT}", "jwt", JWT),
    ],
)
def test_credential_patterns_are_refused_and_named_without_the_value(text: str, label: str, secret: str) -> None:
    found = find_literal_credentials(text, "cmd")
    assert len(found) == 1
    path, reason = found[0]
    assert path == "cmd"
    assert f"({label})" in reason
    assert secret not in reason


def test_one_issue_per_string_even_if_several_patterns_match() -> None:
    found = find_literal_credentials("password=hunter2 https://u:hunter2@h/", "c")
    assert len(found) == 1


def test_paths_name_the_position_in_nested_structures() -> None:
    value = {
        "cmd": ["curl", "https://u:pw12345@h/"],
        "env": {"A": "ok", "MY_TOKEN": "t0k"},
        "x": [{"y": "AKIAIOSFODNN7EXAMPLE"}],
    }
    paths = sorted(path for path, _ in find_literal_credentials(value, "steps[3].params"))
    assert paths == ["steps[3].params.cmd[1]", "steps[3].params.env.MY_TOKEN", "steps[3].params.x[0].y"]


def test_list_under_a_sensitive_key_is_checked_item_by_item() -> None:
    found = find_literal_credentials({"tokens": ["a"], "api_key": ["{{ secret:k }}", "lit"]}, "")
    assert [path for path, _ in found] == ["api_key[1]"]


# --- find_literal_credentials: accepted -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"TOKEN": "{{ secret:nginx_token }}"},
        {"DB_PASSWORD": "{{secret:db}}"},
        {"TOKEN": "  {{ secret:a }}{{ secret:b }}  "},
        {"TOKEN": ""},
        {"TOKEN": "   "},
        {"password": None},
        {"password": True},
        "password={{ secret:db }}",
        "mysql -u root --password {{ secret:db }}",
        "https://user:{{ secret:pw }}@example.com/",
        "Authorization: Bearer {{ secret:api }}",
        "systemctl status nginx",
        "ls -la /tmp",
        "echo $HOME && df -h",
        "https://example.com/path?x=1",
        {"password_file": "/etc/app/pw", "max_tokens": 5, "author": "bob", "keyring": "default"},
    ],
)
def test_references_and_ordinary_values_pass(value: Any) -> None:
    assert find_literal_credentials(value, "p") == []


def test_empty_structures_pass() -> None:
    assert find_literal_credentials({}, "p") == []
    assert find_literal_credentials([], "p") == []
    assert find_literal_credentials(None, "p") == []


def test_a_reference_inside_a_sensitive_value_is_accepted() -> None:
    """`Authorization: Bearer {{ secret:x }}` is the normal way to build a header from a secret."""
    assert find_literal_credentials({"Authorization": "Bearer {{ secret:api }}"}, "params.headers") == []
    assert find_literal_credentials({"Authorization": "Bearer abc123"}, "params.headers") != []


def test_pwd_is_a_directory_not_a_password() -> None:
    """The shell's PWD/OLDPWD variables hold paths; they are not credentials."""
    assert find_literal_credentials({"PWD": "/srv/app", "OLDPWD": "/"}, "params.env") == []
