"""Secret backends: environment (tenant-scoped) and Vault (KV v2 through the real hvac client).

No Vault server can run here (no download of its binary), so Vault is a small local HTTP server that
answers the KV v2 read endpoint as Vault does; hvac talks to it over a real socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import InvalidInput, SafetyRefused, approve, get_execution, principal, submit
from core.safety.secret_backends import EnvironmentBackend, VaultBackend, env_var
from db.settings import get_settings
from tests.engine_support import drive
from tests.http_service import JsonHandler, serving

TOKEN = "test-vault-token"
VAULT: dict[str, str] = {"/v1/secret/data/opsconductor/demo/vaulted": "from-vault-v4lue"}


class FakeVault(JsonHandler):
    def do_GET(self) -> None:
        if self.headers.get("X-Vault-Token") != TOKEN:
            self.answer(403, {"errors": ["permission denied"]})
        elif self.path.split("?")[0] in VAULT:
            value = VAULT[self.path.split("?")[0]]
            self.answer(200, {"data": {"data": {"value": value}, "metadata": {"version": 1, "deletion_time": ""}}})
        else:
            self.answer(404, {"errors": []})


@pytest.fixture
def vault_url() -> Iterator[str]:
    with serving(FakeVault) as url:
        yield url


def test_environment_backend_is_tenant_scoped(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPSC_SECRET_<TENANT>__<NAME>: demo's variable is not globex's."""
    monkeypatch.setenv(env_var("demo", "db.pass-word"), "env-value-1")
    assert env_var("demo", "db.pass-word") == "OPSC_SECRET_demo__db_2Epass_2Dword"
    backend = EnvironmentBackend()
    assert backend.reveal("demo", "db.pass-word") == "env-value-1"
    assert backend.reveal("globex", "db.pass-word") is None and not backend.has("globex", "db.pass-word")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("a__b", "c"), ("a", "b__c")),  # the old form gave both OPSC_SECRET_A__B__C
        (("a", "b_c"), ("a_b", "c")),
        (("demo", "db.pw"), ("demo", "db_pw")),
        (("demo", "db-pw"), ("demo", "db.pw")),
        (("Demo", "x"), ("demo", "x")),
        (("a__", "b"), ("a", "__b")),
    ],
)
def test_environment_names_never_collide_across_tenants_or_names(
    first: tuple[str, str], second: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Attacker's side: a tenant named to share another's variable (or a look-alike secret name) reads nothing."""
    assert env_var(*first) != env_var(*second)
    monkeypatch.setenv(env_var(*first), "meant-for-the-first")
    assert EnvironmentBackend().reveal(*second) is None


def test_environment_names_are_valid_variable_names() -> None:
    import re

    for tenant, name in [("demo", "db.pass-word"), ("t-1", "_x"), ("ünï", "a.b")]:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", env_var(tenant, name))


def test_vault_backend_reads_kv_v2_and_refuses_clearly(vault_url: str) -> None:
    """Found, not found (None), and a refused token (SafetyRefused naming no value)."""
    assert VaultBackend(vault_url, TOKEN, "secret").reveal("demo", "vaulted") == "from-vault-v4lue"
    assert VaultBackend(vault_url, TOKEN, "secret").reveal("globex", "vaulted") is None
    with pytest.raises(SafetyRefused) as info:
        VaultBackend(vault_url, "wrong", "secret").reveal("demo", "vaulted")
    assert info.value.reason == "vault_unavailable" and "from-vault" not in str(info.value)


def test_steps_resolve_environment_and_vault_secrets_masked(
    db: str, vault_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan referencing an environment secret and a Vault secret runs with both, output masked."""
    monkeypatch.setenv("OPSC_VAULT_URL", vault_url)
    monkeypatch.setenv("OPSC_VAULT_TOKEN", TOKEN)
    monkeypatch.setenv(env_var("demo", "from_env"), "env-s3cret-value")
    get_settings.cache_clear()
    plan = (
        "name: backends\nsteps:\n  - {name: e, action: shell, target: localhost, params: {command: [printenv, A, B], "
        "env: {A: '{{ secret:from_env }}', B: '{{ secret:vaulted }}'}}}\n"
    )
    execution_id = submit(principal("alice", "demo"), plan, background=True).execution.execution_id
    approve(principal("bob", "demo"), execution_id)  # a step with a secret is at least modify (DESIGN §13)
    drive(execution_id)
    view = get_execution(principal("alice", "demo"), execution_id)
    assert view.status == "completed" and view.steps[0].output == "***\n***\n"
    with pytest.raises(InvalidInput, match="unknown secret 'vaulted' in tenant globex"):
        submit(principal("mallory", "globex"), plan.replace("from_env", "vaulted"))


@pytest.mark.parametrize(
    ("reference", "message"),
    [("{{ secret:nope }}", "unknown secret 'nope'"), ("{{ secret:bad name }}", "malformed secret reference"),
     ("{{ secrets:x }}", "malformed secret reference")],
)  # fmt: skip
def test_bad_secret_references_are_clear_errors(db: str, reference: str, message: str) -> None:
    """Unknown, malformed or misspelt references are refused at submit with what is wrong."""
    plan = f"name: r\nsteps:\n  - {{name: e, action: shell, target: localhost, params: {{command: [echo], env: {{X: '{reference}'}}}}}}\n"
    with pytest.raises(InvalidInput, match=message):
        submit(principal("alice", "demo"), plan)
