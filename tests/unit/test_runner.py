"""The step runner's identity and confinement (core/safety/runner.py, DESIGN §13) without services: the
clean environment, the refusal when nothing can confine a step, the lab switch and the `check` item."""

from __future__ import annotations

import os
import pwd
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.actions.context import OutputSink, StepContext
from core.actions.shell import Shell
from core.errors import SafetyRefused
from core.safety import runner
from core.safety.masking import Masker
from core.schemas import AssetView
from db.settings import Settings, get_settings

NOT_ROOT = 4242


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Settings read afresh from the environment, with the database in a directory of its own."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("OPSC_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'opsc.db'}")
    monkeypatch.delenv("OPSC_ALLOW_UNCONFINED_STEPS", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def no_confinement(monkeypatch: pytest.MonkeyPatch, settings: None) -> None:
    """A worker that is not root, on a host without bubblewrap."""
    monkeypatch.setattr(runner.os, "geteuid", lambda: NOT_ROOT)
    monkeypatch.setattr(runner, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")


def _context(params: dict[str, object]) -> StepContext:
    masker = Masker()
    asset = AssetView(
        id="a1", name="localhost", connection="local", host=None, port=None, base_url=None, tags=[],
        credential_ref=None, has_known_host_key=False,
    )  # fmt: skip
    return StepContext(
        execution_id="e1", step_index=0, params=params, asset=asset, deadline=time.monotonic() + 10,
        stop=threading.Event(), output=OutputSink(masker), masker=masker,
    )  # fmt: skip


def _has(argv: list[str], part: list[str]) -> bool:
    return any(argv[i : i + len(part)] == part for i in range(len(argv)))


def test_step_env_is_the_declared_env_plus_path_home_and_lang_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the worker's environment (its key, its database URL, its PATH) reaches a step."""
    monkeypatch.setenv("OPSC_SECRET_KEY", "worker-key-canary")
    monkeypatch.setenv("OPSC_DATABASE_URL", "postgresql://u:pw@db/x")
    monkeypatch.setenv("PATH", "/home/worker/.venv/bin:/usr/bin")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    env = runner.step_env({"GREETING": "hi"}, home="/tmp/opsc-step-x")
    assert env == {"PATH": runner.RUNNER_PATH, "HOME": "/tmp/opsc-step-x", "LANG": "de_DE.UTF-8", "GREETING": "hi"}


def test_a_declared_variable_overrides_the_minimal_ones_and_lang_has_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANG", raising=False)
    env = runner.step_env({"PATH": "/opt/tool/bin"}, home="/w")
    assert env == {"PATH": "/opt/tool/bin", "HOME": "/w", "LANG": "C.UTF-8"}


def test_without_root_or_bubblewrap_a_shell_step_is_refused_naming_the_fixes(
    no_confinement: None, tmp_path: Path
) -> None:
    """The command does not run; the step error says how to confine steps, or how to opt out in a lab."""
    marker = tmp_path / "ran"
    result = Shell().run(_context({"command": ["touch", str(marker)]}))
    assert not result.ok and not marker.exists()
    assert result.error is not None
    for fix in ("run the worker as root with OPSC_RUNNER_USER", "install bubblewrap", "OPSC_ALLOW_UNCONFINED_STEPS=1"):
        assert fix in result.error


def test_the_lab_switch_lets_an_unconfined_step_run_with_a_clean_env(
    no_confinement: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OPSC_ALLOW_UNCONFINED_STEPS=1 the step runs as the worker, still without its environment."""
    monkeypatch.setenv("OPSC_ALLOW_UNCONFINED_STEPS", "1")
    monkeypatch.setenv("OPSC_SECRET_KEY", "worker-key-canary")
    get_settings.cache_clear()
    assert runner.confinement() is runner.Confinement.UNCONFINED
    ctx = _context({"command": ["env"], "env": {"DECLARED": "yes"}})
    result = Shell().run(ctx)
    assert result.ok, result.error
    env = dict(line.split("=", 1) for line in ctx.output.text().splitlines())
    # OPSC_TARGET: the step's asset, which a fan-out's steps (the same params) tell apart by.
    assert set(env) == {"PATH", "HOME", "LANG", "DECLARED", "OPSC_TARGET"}
    assert env["OPSC_TARGET"] == ctx.asset.name


def test_check_is_no_go_with_the_lab_switch_even_when_steps_could_be_confined(
    settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "sandbox_problem", lambda: None)
    ok, detail = runner.runner_check(Settings(allow_unconfined_steps=True))
    assert not ok and "OPSC_ALLOW_UNCONFINED_STEPS" in detail


def test_check_is_no_go_without_confinement_and_go_with_a_sandbox(
    no_confinement: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok, detail = runner.runner_check()
    assert not ok and "bubblewrap (bwrap) is not installed" in detail and "install bubblewrap" in detail
    monkeypatch.setattr(runner, "sandbox_problem", lambda: None)
    assert runner.runner_check() == (True, "steps run in a bubblewrap sandbox (worker is not root)")


def test_check_as_root_is_go_for_an_unprivileged_runner_user_and_no_go_for_root(
    settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner.os, "geteuid", lambda: 0)
    nobody = pwd.getpwnam("nobody")
    ok, detail = runner.runner_check(Settings(runner_user="nobody"))
    assert ok and f"uid {nobody.pw_uid}" in detail
    assert runner.runner_check(Settings(runner_user="root"))[0] is False
    assert runner.runner_check(Settings(runner_user="--badname"))[0] is False


@pytest.mark.parametrize("name", ["root", "-o", "x;id", "UPPER"])
def test_the_runner_user_must_be_a_plain_unprivileged_name(
    name: str, settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root, or a name useradd could read as an option or a shell could interpret, is refused."""
    monkeypatch.setattr(runner.os, "geteuid", lambda: 0)
    monkeypatch.setattr(runner, "_create_user", lambda _name: pytest.fail("must not try to create it"))
    with pytest.raises(SafetyRefused) as refused:
        runner.ensure_runner_user(Settings(runner_user=name))
    assert refused.value.reason == "runner_user"


def test_a_worker_that_is_not_root_has_no_runner_user_to_create(no_confinement: None) -> None:
    assert runner.ensure_runner_user() is None


def test_the_sandbox_hides_the_database_directory_after_binding_tmp(settings: None, tmp_path: Path) -> None:
    """A tmpfs over the database's directory, mounted after /tmp so it wins there too."""
    hidden = runner.hidden_dirs(get_settings())
    assert (tmp_path / "data").resolve() in hidden
    argv = runner.sandbox_argv(["printenv", "T"], workdir=tmp_path / "w", cwd=None, hidden=hidden)
    assert argv[-3:] == ["--", "printenv", "T"]
    for option in ("--unshare-pid", "--die-with-parent", "--new-session", "--unshare-ipc"):
        assert option in argv
    assert argv.index("--proc") < argv.index("--tmpfs")
    assert _has(argv, ["--tmpfs", str((tmp_path / "data").resolve())])
    if _has(argv, ["--bind", "/tmp", "/tmp"]):
        assert argv.index("--bind") < argv.index("--tmpfs")


def test_a_database_directly_in_tmp_gives_the_step_an_empty_tmp() -> None:
    settings = Settings(database_url="sqlite:////tmp/opsc-unit-test.db")
    hidden = runner.hidden_dirs(settings)
    assert Path("/tmp") in hidden
    argv = runner.sandbox_argv(["true"], workdir=Path("/tmp/opsc-step-x"), cwd=None, hidden=hidden)
    assert not _has(argv, ["--bind", "/tmp", "/tmp"]) and _has(argv, ["--tmpfs", "/tmp"])


def test_a_database_in_a_system_directory_cannot_be_hidden_and_is_refused() -> None:
    with pytest.raises(SafetyRefused) as refused:
        runner.hidden_dirs(Settings(database_url="sqlite:////etc/opsc.db"))
    assert "move it into a directory of its own" in refused.value.message


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to the runner user needs root")
def test_as_root_a_step_runs_as_the_runner_user_in_a_private_home_that_is_removed(settings: None) -> None:
    ctx = _context({"command": ["sh", "-c", 'id -u; echo "$HOME"; pwd; umask; ls /proc/self/fd']})
    result = Shell().run(ctx)
    assert result.ok, result.error
    uid, home, cwd, umask, *fds = ctx.output.text().split()
    identity = runner.ensure_runner_user()
    assert identity is not None and int(uid) == identity.uid != 0
    assert home == cwd and Path(home).name.startswith("opsc-step-") and not Path(home).exists()
    assert umask == "0077"
    assert set(fds) <= {"0", "1", "2", "3"}  # stdin, stdout, stderr, and ls's own directory handle


@pytest.mark.skipif(runner.sandbox_problem() is not None, reason="bubblewrap is not usable here")
def test_in_the_sandbox_the_worker_processes_are_gone_and_env_values_are_on_no_command_line(
    settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its /proc shows only the sandbox; the declared secret is in the step's env, not in bwrap's argv."""
    monkeypatch.setattr(runner, "confinement", lambda _settings=None: runner.Confinement.SANDBOX)
    script = 'ls /proc | grep -c "^[0-9]"; tr "\\0" " " < /proc/1/cmdline; echo; printenv T'
    ctx = _context({"command": ["sh", "-c", script], "env": {"T": "declared-value-canary"}})
    result = Shell().run(ctx)
    assert result.ok, result.error
    count, cmdline, value = ctx.output.text().splitlines()
    assert int(count) <= 4  # bwrap's init, sh, ls, grep
    assert "bwrap" in cmdline and "declared-value-canary" not in cmdline
    assert value == "declared-value-canary"
