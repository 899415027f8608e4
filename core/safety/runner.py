"""The identity and confinement a local step runs under (DESIGN §13, first bullet).

A step is untrusted code: it must not reach the worker's database file, key file, ``/proc`` entries or
environment. How it is kept out depends on the worker:

- **root**: the step runs as the unprivileged runner user (``OPSC_RUNNER_USER``, default ``opsc-runner``,
  created as a system user by ``opsconductor init`` or at the first step), without supplementary groups.
- **not root**, with bubblewrap (``bwrap``) on PATH: the step runs in a sandbox with a read-only root, a
  writable ``/tmp``, empty tmpfs over the directories of the database, the key file and the worker's
  home, its own pid namespace and ``/proc`` (the worker's processes are not there), its own IPC and
  session, and it dies with the worker (``--die-with-parent``, DESIGN §15).
- **neither**: local steps are refused (``SafetyRefused``) unless the lab switch
  ``OPSC_ALLOW_UNCONFINED_STEPS`` is on, which ``check`` reports NO-GO.

In the root and lab modes the step runs under the step unit (core/safety/step_unit.py), a supervisor that
keeps the worker's identity, switches to the runner itself, dies with the worker's thread
(``PR_SET_PDEATHSIG``) and, as a child subreaper, kills every descendant of the step when the command
ends or the worker dies: no grandchild outlives a step in any mode.

Every mode gives the step a clean environment (its declared ``env`` plus a minimal PATH, HOME and LANG),
a fresh private working directory that is also its HOME (removed afterwards), umask 077, no inherited
file descriptors, stdin from /dev/null unless the step gives some, and a session of its own so the
caller can kill the whole process group. Secret values in the declared env never appear on a command
line (``ps`` shows those to every local user): they reach the child through its environment only.

Imports nothing above ``core.errors`` and ``db.settings``; used by ``core.actions.shell`` and any other
action that starts a local process.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import SafetyRefused
from core.safety.key_file import key_file_path
from db.settings import Settings, get_settings
from db.urls import parse_database_url

RUNNER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
STEP_UMASK = 0o077
# What useradd accepts as a portable system user name; also keeps a name from being read as an option.
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
NO_CONFINEMENT = (
    "local steps are refused: this worker can confine them neither as a runner user nor in a sandbox; "
    "run the worker as root with OPSC_RUNNER_USER, install bubblewrap, "
    "or set OPSC_ALLOW_UNCONFINED_STEPS=1 for a lab"
)
_PROBE_TIMEOUT_S = 10.0


class Confinement(enum.StrEnum):
    """How a local step is kept out of the worker's reach."""

    RUNNER_USER = "runner user"
    SANDBOX = "bubblewrap sandbox"
    UNCONFINED = "unconfined (lab switch)"


@dataclass(frozen=True)
class RunnerIdentity:
    """The unprivileged user a root worker's steps run as."""

    name: str
    uid: int
    gid: int


def step_env(declared: Mapping[str, str], *, home: str) -> dict[str, str]:
    """The whole environment of a step: minimal PATH, HOME and LANG, then what the step declares.

    Nothing of the worker's environment is passed on (it holds ``OPSC_SECRET_KEY`` and the database URL),
    except its LANG so output keeps its encoding.
    """
    base = {"PATH": RUNNER_PATH, "HOME": home, "LANG": os.environ.get("LANG") or "C.UTF-8"}
    return base | dict(declared)


# -- deciding the confinement --------------------------------------------------------------------------


def confinement(settings: Settings | None = None) -> Confinement:
    """The confinement a local step gets in this process.

    Raises:
        SafetyRefused: ``no_step_confinement`` when there is none and the lab switch is off.
    """
    settings = settings or get_settings()
    if os.geteuid() == 0:
        return Confinement.RUNNER_USER
    if sandbox_problem() is None:
        return Confinement.SANDBOX
    if settings.allow_unconfined_steps:
        return Confinement.UNCONFINED
    raise SafetyRefused("no_step_confinement", NO_CONFINEMENT)


def runner_check(settings: Settings | None = None) -> tuple[bool, str]:
    """GO/NO-GO for ``check``: are local steps kept out of this worker's reach? Touches nothing.

    Judged for the calling process: run ``check`` as the user the workers run as.
    """
    settings = settings or get_settings()
    if settings.allow_unconfined_steps:
        return False, "OPSC_ALLOW_UNCONFINED_STEPS is on: local steps may run as the worker itself (lab only)"
    if os.geteuid() == 0:
        name = settings.runner_user
        if not USER_NAME.match(name):
            return False, f"OPSC_RUNNER_USER {name!r} is not a valid user name"
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            if shutil.which("useradd") is None:
                return False, f"runner user {name} does not exist and useradd is missing: create it"
            return True, f"steps run as runner user {name} (created at `opsconductor init` or the first step)"
        if entry.pw_uid == 0:
            return False, f"runner user {name} is root: OPSC_RUNNER_USER must name an unprivileged user"
        return True, f"steps run as runner user {name} (uid {entry.pw_uid})"
    problem = sandbox_problem()
    if problem is None:
        return True, "steps run in a bubblewrap sandbox (worker is not root)"
    return False, f"{problem}; {NO_CONFINEMENT}"


@functools.lru_cache(maxsize=4)
def _sandbox_problem_for(bwrap: str | None) -> str | None:
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    # bwrap is installed but may not work (user namespaces disabled, seccomp): try the options we use.
    argv = [bwrap, *_SANDBOX_OPTIONS, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--", "true"]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, env={"PATH": RUNNER_PATH}, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not start: {exc}"
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"bubblewrap does not work here: {detail}"
    return None


def sandbox_problem() -> str | None:
    """Why bubblewrap cannot confine steps here (None: it can). The probe runs once per bwrap path."""
    return _sandbox_problem_for(shutil.which("bwrap"))


# -- the runner user -----------------------------------------------------------------------------------

_user_lock = threading.Lock()


def ensure_runner_user(settings: Settings | None = None) -> RunnerIdentity | None:
    """As root: the runner user, created as a system user (no home, no login shell) when missing.

    Not root: None (there is no user to switch to; steps are sandboxed instead).

    Raises:
        SafetyRefused: ``runner_user`` when the name is invalid, names root, or the user cannot be created.
    """
    if os.geteuid() != 0:
        return None
    name = (settings or get_settings()).runner_user
    if not USER_NAME.match(name):
        raise SafetyRefused("runner_user", f"OPSC_RUNNER_USER {name!r} is not a valid user name")
    with _user_lock:  # worker threads starting their first steps at once create it once
        entry = _passwd(name)
        if entry is None:
            _create_user(name)
            entry = _passwd(name)
        if entry is None:
            raise SafetyRefused("runner_user", f"runner user {name} was not created")
    if entry.pw_uid == 0:
        raise SafetyRefused("runner_user", f"runner user {name} is root: OPSC_RUNNER_USER must be unprivileged")
    return RunnerIdentity(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def _passwd(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _create_user(name: str) -> None:
    useradd = shutil.which("useradd", path=RUNNER_PATH)
    if useradd is None:
        raise SafetyRefused("runner_user", f"runner user {name} does not exist and useradd is missing: create it")
    try:
        grp.getgrnam(name)
        group = ["--gid", name]  # a group of that name already exists: join it rather than fail
    except KeyError:
        group = ["--user-group"]
    argv = [useradd, "--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"]
    done = subprocess.run(  # an argv list; the name matched USER_NAME
        [*argv, *group, "--", name], capture_output=True, text=True, env={"PATH": RUNNER_PATH}, check=False
    )
    if done.returncode not in (0, 9):  # 9: the name is taken (another process created it meanwhile)
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit code {done.returncode}"
        raise SafetyRefused("runner_user", f"cannot create runner user {name}: {detail}")


# -- starting a confined process ----------------------------------------------------------------------


@contextmanager
def confined_popen(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    stdin_pipe: bool = False,
    settings: Settings | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` confined (see the module docstring), stdout and stderr merged into one pipe.

    The process (the step unit, or bwrap) leads its own session (``os.killpg(proc.pid, …)`` reaches its
    group), and ``proc.pid`` is what the engine records as the step's process group. Its working
    directory is ``cwd`` if given (entered as the runner, so a directory it may not enter stays closed),
    else its private work dir; that dir is removed when the block ends: stop the process before then.

    Raises:
        SafetyRefused: no confinement (see ``confinement``) or no usable runner user.
        OSError: the command (or the sandbox) cannot be started.
    """
    settings = settings or get_settings()
    mode = confinement(settings)
    identity = ensure_runner_user(settings) if mode is Confinement.RUNNER_USER else None
    workdir = Path(tempfile.mkdtemp(prefix="opsc-step-"))  # 0700, ours
    try:
        if identity is not None:
            os.chown(workdir, identity.uid, identity.gid)
        full_env = step_env(env, home=str(workdir))
        if mode is Confinement.SANDBOX:
            # bwrap is the unit: its own pid namespace dies with it, and it dies with us (--die-with-parent).
            command = sandbox_argv(argv, workdir=workdir, cwd=cwd, hidden=hidden_dirs(settings))
            proc = _popen(command, env=full_env, cwd=str(workdir), stdin_pipe=stdin_pipe)
        else:
            proc = _popen_in_unit(
                argv, env=full_env, workdir=workdir, cwd=cwd, identity=identity, stdin_pipe=stdin_pipe
            )
        try:
            yield proc
        finally:
            if proc.poll() is None:  # the caller let go of a running process (a bug): do not leave it behind
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    finally:
        _remove(workdir)


def _popen(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str, stdin_pipe: bool, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env=env,
        close_fds=True,
        pass_fds=pass_fds,
        start_new_session=True,
        umask=STEP_UMASK,
    )


_STEP_UNIT = Path(__file__).with_name("step_unit.py")


def _popen_in_unit(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    workdir: Path,
    cwd: str | None,
    identity: RunnerIdentity | None,
    stdin_pipe: bool,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` under the step unit (core/safety/step_unit.py): it dies with this thread's process and
    kills every descendant of the step when the command ends or when it dies.

    The unit keeps the worker's identity (a root worker's unit is root, so the step cannot signal or
    trace it) and switches to the runner user itself before it execs the command.

    Raises:
        OSError: the command could not be started (as the unit's child reported it: chdir, exec).
    """
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        uid, gid = (str(identity.uid), str(identity.gid)) if identity is not None else ("-", "-")
        # -I -S: no user site, no PYTHON* variables, no site-packages: the unit needs the standard library only.
        command = [sys.executable, "-I", "-S", str(_STEP_UNIT), str(os.getpid()), str(write_end), uid, gid]
        command += [cwd or "-", "--", *argv]
        proc = _popen(command, env=env, cwd=str(workdir), stdin_pipe=stdin_pipe, pass_fds=(write_end,))
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "rb") as status:
            read_end = -1
            failure = status.read()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    if failure:
        proc.wait()
        errno, _, what = failure.decode(errors="replace").partition(":")
        number = int(errno) if errno.isdigit() else 0
        raise OSError(number, os.strerror(number) if number else "cannot start", what)
    return proc


_SANDBOX_OPTIONS = (
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
)


def sandbox_argv(argv: Sequence[str], *, workdir: Path, cwd: str | None, hidden: Sequence[Path]) -> list[str]:
    """The bwrap command line for ``argv``: no environment on it (bwrap passes its own, clean, one on).

    ``/tmp`` is the host's, writable as for any user (the demo's log rotation keeps files there between
    steps), unless it is to be hidden itself; then the step gets an empty one.
    """
    bwrap = shutil.which("bwrap") or "bwrap"
    command = [bwrap, *_SANDBOX_OPTIONS, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    if _TMP not in hidden and _TMP.is_dir():
        command += ["--bind", str(_TMP), str(_TMP)]
    for path in hidden:  # after /tmp: a database under /tmp is hidden too
        command += ["--tmpfs", str(path)]
    command += ["--bind", str(workdir), str(workdir), "--chdir", cwd or str(workdir), "--", *argv]
    return command


_TMP = Path("/tmp")  # noqa: S108  the host's shared temp dir, not a file we create
# Directories a sandbox cannot blank without leaving nothing to run.
_SYSTEM_DIRS = frozenset(Path(p) for p in ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/dev", "/proc"))


def hidden_dirs(settings: Settings) -> list[Path]:
    """Directories a sandboxed step sees empty: the database's, the key file's, the worker's home.

    Raises:
        SafetyRefused: ``no_step_confinement`` when the database or key file lies in a system directory,
            which cannot be hidden (a sandboxed step runs as the worker's own uid: only hiding protects them).
    """
    protect: list[Path] = []
    if settings.is_sqlite:
        database = parse_database_url(settings.database_url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            protect.append(Path(database).resolve().parent)
    key_file = key_file_path(settings)
    if key_file is not None:
        protect.append(key_file.resolve().parent)
    if settings.session_key_file:  # the console's session key (core/identity/session_key.py)
        protect.append(Path(settings.session_key_file).resolve().parent)
    for path in protect:
        if path in _SYSTEM_DIRS:
            raise SafetyRefused(
                "no_step_confinement",
                f"local steps are refused: the database or key file lies in {path}, which a sandbox cannot "
                "hide; move it into a directory of its own",
            )
    found = set(protect)
    home = os.environ.get("HOME")
    if home and Path(home).resolve() not in _SYSTEM_DIRS | {_TMP}:
        found.add(Path(home).resolve())
    return sorted(p for p in found if p.is_dir())


def _remove(workdir: Path) -> None:
    """Remove the step's work dir, even where the step took its own permissions away."""

    def retry_writable(function: Any, path: str, _exc: Any) -> None:
        try:
            parent = os.path.dirname(path)
            os.chmod(parent, stat.S_IRWXU)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, stat.S_IRWXU)
            function(path)
        except OSError:
            pass  # a leftover in the temp dir is not worth failing the step over

    shutil.rmtree(workdir, onerror=retry_writable)
