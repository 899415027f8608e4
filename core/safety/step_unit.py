"""The unit a local step runs in: a tiny supervisor that dies with its worker and takes the step with it.

Started by core/safety/runner.py as ``python -I -S step_unit.py PARENT STATUS_FD UID GID CWD -- ARGV...``
(standard library only: it runs before anything of the project is importable). It is the leader of the
step's session and process group, and:

- asks the kernel for SIGTERM when its parent thread (the worker's) ends (``PR_SET_PDEATHSIG``), and
  checks that parent still is ``PARENT`` (it may have died before the request);
- becomes a child subreaper, so every orphaned descendant of the step is re-parented to it, even one
  that left the process group with ``setsid``;
- forks the command: in the child, drops to ``UID``/``GID`` (root workers; ``-`` keeps the identity),
  asks for SIGKILL when the supervisor dies, enters ``CWD`` (as the runner: a directory it may not enter
  stays closed) and execs ``ARGV``. An exec or chdir failure is written to ``STATUS_FD`` as
  ``errno:what`` (close-on-exec: a successful exec closes it, so the worker reads EOF);
- waits for the command; when it ends (or the worker dies) it SIGKILLs every descendant still alive,
  reaps them, and exits as the command did (same code, or killed by the same signal).

A SIGTERM, SIGHUP or SIGINT while the worker lives is a stop of the group (``killpg``): the command got it
too and the supervisor waits for it. After the worker's death the same signal (the death signal) is the
cue to kill everything.
"""

from __future__ import annotations

# _signal, not signal: the latter imports enum, which alone doubles this supervisor's start-up time.
import _signal as signal  # type: ignore[import-not-found]
import ctypes
import errno
import os
import sys

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class _ParentGone(Exception):
    """The worker that started the step is gone."""


_LIBC = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _LIBC.prctl(option, value, 0, 0, 0) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def _children() -> list[int]:
    """This process's children (re-parented orphans included)."""
    found: set[int] = set()
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as children:
                found.update(int(pid) for pid in children.read().split())
        return sorted(found)
    except OSError:  # no CONFIG_PROC_CHILDREN: scan /proc for our pid as parent
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as file:
                        stat = file.read()
                except OSError:
                    continue
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == me:
                    found.add(int(entry))
        return sorted(found)


def _kill_descendants() -> None:
    """SIGKILL every child until none is left: a killed child's own children are re-parented to us."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue  # reaped one: look again
        for child in _children():
            try:  # noqa: SIM105  contextlib costs the supervisor's start-up more than this line
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _exit_like(status: int) -> None:
    """End this process the way the command ended."""
    if os.WIFSIGNALED(status):
        import resource  # only on this rare path

        sig = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the command's core dump is not ours to repeat
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def _exec_command(
    supervisor: int, status_fd: int, uid: str, gid: str, cwd: str, argv: list[str], candidates: list[str]
) -> None:
    """In the forked child: become the runner, tie our life to the supervisor's, enter cwd, exec.

    Imports nothing: after the user switch the runner may not be able to read the interpreter's library.
    """
    what = "exec"
    try:
        for sig in (*_STOP_SIGNALS, signal.SIGPIPE, signal.SIGXFSZ):  # Python changed these; a command expects defaults
            signal.signal(sig, signal.SIG_DFL)
        if gid != "-":
            what = "setgid"
            os.setgroups([])
            os.setgid(int(gid))
        if uid != "-":
            what = "setuid"
            os.setuid(int(uid))
        # After the user switch: a credential change clears the death signal.
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != supervisor:
            os._exit(1)  # the supervisor died before the death signal was asked for
        if cwd != "-":
            what = f"chdir {cwd}"
            os.chdir(cwd)
        what = argv[0]
        failure: OSError | None = None
        for path in candidates:  # execvp's search, without the imports it does (the runner cannot read them)
            try:
                os.execv(path, argv)  # noqa: S606  an argv, as the step declared it
            except OSError as exc:
                if failure is None or exc.errno == errno.EACCES:
                    failure = exc
        raise failure or OSError(errno.ENOENT, "not found")
    except OSError as exc:
        os.write(status_fd, f"{exc.errno or 0}:{what}".encode(errors="replace"))
    os._exit(127)


def _candidates(name: str) -> list[str]:
    """Where execvp would look for ``name``: itself if it has a slash, else each PATH directory in turn."""
    if "/" in name:
        return [name]
    path = os.environ.get("PATH") or os.defpath
    return [os.path.join(directory or ".", name) for directory in path.split(os.pathsep)]


def main(args: list[str]) -> None:
    parent, status_fd, uid, gid, cwd, separator, *argv = args
    if separator != "--" or not argv:
        raise SystemExit("usage: step_unit.py PARENT STATUS_FD UID GID CWD -- ARGV...")
    fd = int(status_fd)
    os.set_inheritable(fd, False)

    def on_stop(_sig: int, _frame: object) -> None:
        if os.getppid() != int(parent):
            raise _ParentGone
        # The worker stopped the group: the command got the signal too; wait for it to end.

    for sig in _STOP_SIGNALS:
        signal.signal(sig, on_stop)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != int(parent):
        os._exit(1)  # the worker died before the death signal was asked for
    try:
        supervisor, candidates = os.getpid(), _candidates(argv[0])
        child = os.fork()
        if child == 0:
            _exec_command(supervisor, fd, uid, gid, cwd, argv, candidates)
        os.close(fd)
        # The command owns the step's stdio; the supervisor keeps none of it (EOF comes when the step is gone).
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(null, target)
        os.close(null)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == child:
                break
    except _ParentGone:
        _kill_descendants()
        os._exit(1)
    try:
        _kill_descendants()
    except _ParentGone:
        _kill_descendants()
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
