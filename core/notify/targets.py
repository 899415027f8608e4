"""Where a webhook may point, and what of its URL may be shown.

A webhook URL often carries a token in its path (Slack's do), so it is stored encrypted and shown only as its
scheme and host (``hint``). Against SSRF, a URL whose host resolves to a loopback, link-local (cloud metadata
lives there), unspecified, multicast or reserved address is refused, at setup and again before every delivery
(DNS may change), unless ``OPSC_NOTIFY_ALLOW_LOCAL`` is on (tests and labs). Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from core.errors import InvalidInput, SafetyRefused

MAX_URL = 2048
EMAIL = re.compile(r"^[^@\s,;<>\"']{1,64}@[A-Za-z0-9.-]{1,253}$")
# Cloud metadata endpoints outside the link-local range (Alibaba; AWS's IPv6 one).
_METADATA = frozenset({ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")})


def hint(url: str) -> str:
    """What may be shown of a webhook URL: its scheme and host (``https://hooks.slack.com/…``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparseable URL)"
    return f"{parts.scheme}://{host}{port}/…"


def check_url(url: str, *, allow_local: bool, path: str = "url") -> str:
    """The webhook URL, stripped, once it passes the rules above.

    Raises:
        InvalidInput: not an http(s) URL with a host, too long, or with a user part.
        SafetyRefused: its host resolves to an address refused (``notify_target_refused``), or does not resolve.
    """
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidInput(f"an http(s) URL of at most {MAX_URL} characters", path=path)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise InvalidInput("not a URL", path=path) from None
    if parts.scheme not in {"http", "https"} or not host:
        raise InvalidInput("an http:// or https:// URL with a host", path=path)
    if parts.username or parts.password:
        raise InvalidInput("no user or password in the URL (use the signature header to authenticate)", path=path)
    if not allow_local:
        for address in _addresses(host, port or (443 if parts.scheme == "https" else 80)):
            why = refused_because(address)
            if why:
                raise SafetyRefused(
                    "notify_target_refused",
                    f"{hint(url)} resolves to a {why} address; set OPSC_NOTIFY_ALLOW_LOCAL=1 to allow it (labs, tests)",
                )
    return url


def check_email(address: str, *, path: str = "address") -> str:
    """The address, stripped, if it is one plain address (no display name, no list, no header injection)."""
    address = address.strip()
    if not EMAIL.match(address):
        raise InvalidInput("one email address, like ops@example.com", path=path)
    return address


def refused_because(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not reach ``address`` (loopback, link-local, ...), or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA:
        return "cloud metadata"
    for why, flag in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    ):
        if flag:
            return why
    return None


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise SafetyRefused(
            "notify_target_unresolved", f"the host of {hint('http://' + host)} does not resolve"
        ) from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
