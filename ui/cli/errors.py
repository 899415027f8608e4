"""The one seam where the CLI turns exceptions into exit codes and stderr lines (DESIGN §11).

``CoreError`` subclasses carry their exit code (2 invalid input, 3 permission denied, 4 not found,
5 conflict); typer's own exceptions (usage errors exit 2, ``--help``, ``Exit``) pass through untouched;
anything else is a bug: logged in one short line with a reference id, exit 1, never a traceback
unless the user asked for one with ``--debug``. Imports ``core`` only.
"""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any

import typer
from typer.core import TyperGroup

import core
from ui.cli.output import terminal_safe

DEBUG_KEY = "opsconductor.debug"
INTERNAL_ERROR_EXIT = 1

log = logging.getLogger("opsconductor.cli")


class GuardedGroup(TyperGroup):
    """The root command group: every subcommand runs inside its ``invoke``, so one handler covers all."""

    # ``Any``: the parameter is typer's vendored click Context, whose module is private.
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # typer's own: --help, usage errors (exit 2), explicit exits
        except core.CoreError as exc:
            report_core_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001  the last line of defence: a bug, reported without a traceback
            report_internal_error(exc, debug=bool(ctx.meta.get(DEBUG_KEY, False)))
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None


def error_lines(exc: core.CoreError) -> list[str]:
    """What the user reads on stderr for a domain error: one line per problem."""
    if isinstance(exc, core.InvalidInput) and exc.issues:
        return [f"error: {path}: {message}" if path else f"error: {message}" for path, message in exc.issues]
    if isinstance(exc, core.SafetyRefused):
        return [f"error: {exc.message} [{exc.reason}]"]
    return [f"error: {exc.message}"]


def report_core_error(exc: core.CoreError) -> None:
    """Print a domain error on stderr."""
    for line in error_lines(exc):  # messages quote names and paths from the input: no raw control characters
        typer.echo(terminal_safe(line, multiline=True, indent="  "), err=True)


class _ShortFormatter(logging.Formatter):
    """One line per record: the traceback stays out of the user's terminal."""

    def formatException(self, ei: Any) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""


def report_internal_error(exc: BaseException, *, debug: bool) -> str:
    """Log an unexpected exception (type and reference id; the traceback only with ``debug``).

    Only the exception's type is shown, never its message: a message might quote a value that should
    not be on a screen. Returns the reference id.
    """
    ref = uuid.uuid4().hex[:8]
    # Built per report so the handler writes to the stderr of this invocation (tests swap sys.stderr).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s") if debug else _ShortFormatter("%(message)s"))
    log.handlers = [handler]
    log.propagate = False
    hint = "traceback follows" if debug else "rerun with --debug to log the traceback"
    log.error("internal error (ref %s): %s; %s", ref, type(exc).__name__, hint, exc_info=exc)
    return ref
