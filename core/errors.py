"""The domain's exceptions. Everything core raises on purpose is a ``CoreError``::

    CoreError
    ├── InvalidInput        bad plan or argument; ``issues`` lists (path, message) pairs   → CLI exit 2
    ├── PermissionDenied    the principal's role does not allow it                        → CLI exit 3
    ├── NotFound            no such id *in the principal's tenant* (other tenants' ids too) → CLI exit 4
    ├── Conflict            duplicate, already decided, lock held (``owner``)             → CLI exit 5
    │   └── InvalidTransition   an FSM edge that does not exist (``execution_id, from_status, to_status``)
    ├── SafetyRefused       a safety rule said no (``reason`` is a stable code)           → CLI exit 3
    ├── DeadlineExceeded    a bounded wait ran out (approval expired, wait_for timed out) → CLI exit 5
    └── ServiceUnavailable  the database is unreachable or not initialised                → CLI exit 1

Facts are attributes, the message is for humans. Database errors are translated where they happen
(``raise … from exc``); anything that is not a CoreError is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence


class CoreError(Exception):
    """Root of every deliberate domain error."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(CoreError):
    """Input that cannot be accepted. ``issues`` holds (path, message) pairs, e.g. ("steps[2].name", "required")."""

    exit_code = 2

    def __init__(self, issues: Sequence[tuple[str, str]] | str, *, path: str = "") -> None:
        if isinstance(issues, str):
            issues = [(path, issues)]
        self.issues: list[tuple[str, str]] = list(issues)
        super().__init__("; ".join(f"{p}: {m}" if p else m for p, m in self.issues))

    @property
    def path(self) -> str:
        """The path of the first issue ("" when the input as a whole is wrong)."""
        return self.issues[0][0] if self.issues else ""


class PermissionDenied(CoreError):
    exit_code = 3


class NotFound(CoreError):
    exit_code = 4

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


class Conflict(CoreError):
    """The request clashes with current state. ``owner`` names who holds what we wanted, when known."""

    exit_code = 5

    def __init__(self, message: str, *, owner: str | None = None) -> None:
        super().__init__(message)
        self.owner = owner


class InvalidTransition(Conflict):
    def __init__(self, execution_id: str, from_status: str, to_status: str) -> None:
        super().__init__(f"execution {execution_id}: cannot go from {from_status} to {to_status}")
        self.execution_id = execution_id
        self.from_status = from_status
        self.to_status = to_status


class SafetyRefused(CoreError):
    exit_code = 3

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DeadlineExceeded(CoreError):
    exit_code = 5


class ServiceUnavailable(CoreError):
    """A service we depend on cannot be used right now; the message says what to do."""

    exit_code = 1
