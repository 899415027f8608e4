"""The Admin page (read-only): policies, tenant settings, members, assets, secret names without values."""

from __future__ import annotations

from tests.ui.conftest import OpenConsole, texts

PAGE = "ui/pages/admin.py"


def test_admin_page_shows_policies_tenant_members_assets_and_secret_names(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    assert not at.exception
    assert not at.error
    policies, tenant, members, assets, secrets = (frame.value for frame in at.dataframe)
    assert len(policies) == 9
    assert tenant["mode"].tolist() == ["live"]
    assert set(members["username"]) == {"alice", "bob", "carol", "dave", "admin"}
    assert assets["name"].tolist() == ["localhost"]
    assert secrets["name"].tolist() == ["demo_token"]


def test_admin_page_never_shows_a_secret_value(console: OpenConsole) -> None:
    at = console("admin", page=PAGE)
    assert "s3cr3t" not in texts(at)


def test_admin_page_is_scoped_to_the_signed_in_tenant(console: OpenConsole) -> None:
    at = console("admin", tenant="globex", page=PAGE)
    assert not at.exception
    members = at.dataframe[2].value
    assert set(members["username"]) == {"mallory", "admin"}
