"""The router lists only the pages the signed-in principal's role may open."""

from __future__ import annotations

import pytest

from tests.ui.conftest import OpenConsole

EXECUTIONS = "ui/pages/executions.py"
SUBMIT = "ui/pages/submit.py"
APPROVALS = "ui/pages/approvals.py"
ADMIN = "ui/pages/admin.py"


def opens(console: OpenConsole, username: str | None, page: str, tenant: str = "demo") -> bool:
    """True if ``page`` opens for ``username`` (AppTest refuses unregistered pages; signed out, every page is
    registered so that its address resolves, and shows the sign-in page instead)."""
    at = console(username, tenant)
    try:
        at.switch_page(page)
    except ValueError:
        return False
    at.run()
    assert not at.exception
    return [t.value for t in at.title] != ["Sign in"]


@pytest.mark.parametrize(
    ("username", "visible", "hidden"),
    [
        (None, [], [EXECUTIONS, SUBMIT, APPROVALS, ADMIN]),
        ("dave", [EXECUTIONS], [SUBMIT, APPROVALS, ADMIN]),
        ("alice", [EXECUTIONS, SUBMIT], [APPROVALS, ADMIN]),
        ("bob", [EXECUTIONS, SUBMIT, APPROVALS], [ADMIN]),
        ("admin", [EXECUTIONS, SUBMIT, APPROVALS, ADMIN], []),
    ],
)
def test_navigation_follows_the_role(
    console: OpenConsole, username: str | None, visible: list[str], hidden: list[str]
) -> None:
    """viewer: Executions; operator: +Submit; approver: +Approvals; admin: +Admin; signed out: sign-in only."""
    for page in visible:
        assert opens(console, username, page), f"{username} should see {page}"
    for page in hidden:
        assert not opens(console, username, page), f"{username} should not see {page}"
