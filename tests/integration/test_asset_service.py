"""The optional asset service client (core/inventory/asset_service.py) against a real local HTTP service: a plan naming
an asset only the service knows resolves and runs, unknown names stay unknown, a broken or absent service
is a clear error that submits nothing, and each tenant sees only its own assets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from core import (
    InvalidInput,
    ServiceUnavailable,
    get_execution,
    list_assets,
    list_executions,
    preview,
    principal,
    submit,
)
from core.actions.circuit import BREAKER
from db.settings import get_settings
from tests.http_service import JsonHandler, serving

WEB_02 = {
    "name": "web-02",
    "connection": "ssh",
    "host": "10.0.0.2",
    "port": 2222,
    "base_url": None,
    "tags": ["remote", "web"],
    "credential_ref": None,
    "known_host_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnly",
}
# What the service knows, by (tenant, asset): demo has web-02 and two broken answers; globex has nothing.
ASSETS: dict[tuple[str, str], bytes] = {
    ("demo", "web-02"): json.dumps(WEB_02).encode(),
    ("demo", "telnet-box"): json.dumps({"name": "telnet-box", "connection": "telnet", "host": "h"}).encode(),
    ("demo", "garbled"): b"{not json",
}
REQUESTS: list[str] = []


class Handler(JsonHandler):
    def do_GET(self) -> None:
        REQUESTS.append(self.path)
        _, tenants, tenant, assets, name = self.path.split("/")
        body = ASSETS.get((tenant, name)) if (tenants, assets) == ("tenants", "assets") else None
        if body is None:
            self.answer(404, {"detail": "no such asset"})
        else:
            self.answer_raw(200, body)  # as stored: some answers are deliberately not valid JSON


@pytest.fixture
def service(db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The asset service at OPSC_ASSET_SERVICE_URL."""
    REQUESTS.clear()
    BREAKER.reset()
    with serving(Handler) as url:
        monkeypatch.setenv("OPSC_ASSET_SERVICE_URL", url)
        get_settings.cache_clear()
        yield url
    BREAKER.reset()
    get_settings.cache_clear()


def _plan(target: str) -> str:
    return f"name: n\nsteps:\n  - {{name: n, action: noop, target: {target}, params: {{x: 1}}}}\n"


def test_a_remote_asset_is_imported_and_the_plan_runs_on_it(service: str) -> None:
    """The service's asset joins the tenant's inventory as it was described; a noop step on it runs, and the
    next plan finds it locally without asking again."""
    alice = principal("alice", "demo")
    result = submit(alice, _plan("web-02"))
    assert get_execution(alice, result.execution.execution_id).status == "completed"
    assert REQUESTS == ["/tenants/demo/assets/web-02"]
    asset = next(a for a in list_assets(alice) if a.name == "web-02")
    assert (asset.connection, asset.host, asset.port, asset.tags, asset.has_known_host_key) == (
        "ssh",
        "10.0.0.2",
        2222,
        ["remote", "web"],
        True,
    )
    assert submit(alice, _plan("web-02")).execution.status == "completed"
    assert REQUESTS == ["/tenants/demo/assets/web-02"]


def test_preview_resolves_a_remote_asset_too(service: str) -> None:
    """Previewing a plan sees the same targets a submission would."""
    steps = preview(principal("alice", "demo"), _plan("web-02")).steps
    assert steps[0]["target"] == "web-02" and steps[0]["asset_id"]


def test_an_asset_the_service_does_not_know_is_the_usual_unknown_asset(service: str) -> None:
    """404 from the service: the ordinary validation error, naming the step's target."""
    with pytest.raises(InvalidInput) as caught:
        submit(principal("alice", "demo"), _plan("nope"))
    assert caught.value.issues == [("steps[0].target", "unknown asset 'nope' in tenant demo")]
    assert REQUESTS == ["/tenants/demo/assets/nope"]


def test_an_answer_that_is_not_an_asset_is_invalid_input(service: str) -> None:
    """An unknown connection type or bad JSON is refused with the field at fault; nothing is imported."""
    alice = principal("alice", "demo")
    with pytest.raises(InvalidInput, match=r"asset_service\[telnet-box\]\.connection: asset service: Input should"):
        submit(alice, _plan("telnet-box"))
    with pytest.raises(InvalidInput, match=r"asset_service\[garbled\]: asset service: Invalid JSON"):
        submit(alice, _plan("garbled"))
    assert [a.name for a in list_assets(alice)] == ["lab-1", "lab-2", "lab-3", "localhost"]  # the demo's own only


def test_a_service_that_is_down_is_a_clear_error_and_nothing_is_submitted(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unreachable: retried, then ServiceUnavailable naming the asset; repeated failures open the circuit,
    after which lookups fail fast without a connection attempt."""
    monkeypatch.setattr(BREAKER, "threshold", 2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPSC_ASSET_SERVICE_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    alice = principal("alice", "demo")
    for _ in range(2):
        with pytest.raises(ServiceUnavailable, match=r"failed \(ConnectError: .*asset 'web-02' cannot be resolved"):
            submit(alice, _plan("web-02"))
    with pytest.raises(ServiceUnavailable, match=r"unavailable \(circuit open for 127\.0\.0\.1"):
        submit(alice, _plan("web-02"))  # the breaker answers: no connection is tried
    assert list_executions(alice) == []


def test_the_lookup_is_scoped_to_the_submitters_tenant(service: str) -> None:
    """The URL names the submitter's tenant: globex is not told about demo's asset, even once demo has
    imported it, and its inventory stays as it was."""
    submit(principal("alice", "demo"), _plan("web-02"))
    mallory = principal("mallory", "globex")
    with pytest.raises(InvalidInput, match="unknown asset 'web-02' in tenant globex"):
        submit(mallory, _plan("web-02"))
    assert REQUESTS == ["/tenants/demo/assets/web-02", "/tenants/globex/assets/web-02"]
    assert [a.name for a in list_assets(principal("admin", "globex"))] == ["localhost"]


def test_names_that_cannot_be_assets_are_never_sent(service: str) -> None:
    """A target like '..' is not a possible asset name: it is not put into a URL."""
    with pytest.raises(InvalidInput, match=r"unknown asset '\.\.'"):
        submit(principal("alice", "demo"), _plan("'..'"))
    assert REQUESTS == []
