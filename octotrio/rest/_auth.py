"""Who made a REST call: API keys, login-session cookies and the CSRF check (§12.1).

Cookies carry a port suffix as OctoPrint's do (``session_P5000``, ``csrf_token_P5000``), so two
servers on one host do not share them. A state-changing request (not GET/HEAD/OPTIONS) without
an API key must echo the ``csrf_token_P<port>`` cookie in ``X-CSRF-Token``; one with an
invalid API key fails the same way, as in OctoPrint: ``400 {"error": "CSRF validation failed"}``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable

import trio

from octotrio.auth import AccessControl, Principal
from octotrio.http import Request

from ._common import ApiError, request_api_key

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that change nothing and so need no CSRF token."""

CSRF_FAILED = "CSRF validation failed"

MAX_COOKIE_HEADER = 8192
"""A longer Cookie header is ignored as a whole (bounded parsing of client input)."""


def cookie_suffix(request: Request) -> str:
    """``_P<port>`` from the Host header (80 without a port), as OctoPrint names its cookies."""
    host = request.header("host") or ""
    _, colon, port = host.rpartition(":")
    if colon and port.isdigit() and "]" not in port:
        return f"_P{int(port)}"
    return "_P80"


def request_cookies(request: Request) -> dict[str, str]:
    """The request's cookies by name; malformed pairs are skipped."""
    header = request.header("cookie") or ""
    if len(header) > MAX_COOKIE_HEADER:
        return {}
    cookies: dict[str, str] = {}
    for pair in header.replace(",", ";").split(";"):
        name, equals, value = pair.strip().partition("=")
        if equals and name:
            cookies.setdefault(name, value.strip().strip('"'))
    return cookies


def session_token(request: Request) -> str | None:
    """The login session token from the ``session_P<port>`` cookie."""
    return request_cookies(request).get("session" + cookie_suffix(request)) or None


def set_cookie(request: Request, name: str, value: str, *, http_only: bool) -> tuple[str, str]:
    """A ``Set-Cookie`` header for ``<name>_P<port>`` (empty ``value``: delete it)."""
    attributes = "; Path=/; SameSite=Lax" + ("; HttpOnly" if http_only else "")
    if not value:
        attributes += "; Max-Age=0"
    return ("Set-Cookie", f"{name}{cookie_suffix(request)}={value}{attributes}")


def new_csrf_cookie(request: Request) -> tuple[str, str]:
    """A fresh CSRF token cookie; scripts must read it to echo it, so it is not HttpOnly."""
    return set_cookie(request, "csrf_token", secrets.token_urlsafe(32), http_only=False)


def csrf_valid(request: Request) -> bool:
    cookie = request_cookies(request).get("csrf_token" + cookie_suffix(request))
    header = request.header("x-csrf-token")
    if not cookie or header is None:
        return False
    return hmac.compare_digest(cookie.encode(), header.encode())


class AccessAuthenticator:
    """The REST :class:`~octotrio.rest.Authenticator` backed by an :class:`AccessControl`.

    ``clock`` gives the time sessions age by; the default is trio's clock (``MockClock`` in tests).
    """

    def __init__(self, access: AccessControl, clock: Callable[[], float] = trio.current_time) -> None:
        self.access = access
        self.clock = clock

    def authenticate(self, request: Request) -> Principal:
        """The caller, or the anonymous guest. Raises 400 for a failed CSRF check."""
        api_key = request_api_key(request)
        if api_key is not None:
            principal = self.access.principal_for_api_key(api_key)
            if principal is not None:
                return principal
            if request.method not in SAFE_METHODS:
                raise ApiError(400, CSRF_FAILED)
            return self.access.guest  # an invalid key reads as no key (OctoPrint)
        if request.method not in SAFE_METHODS and not csrf_valid(request):
            raise ApiError(400, CSRF_FAILED)
        token = session_token(request)
        if token is not None:
            principal = self.access.session_principal(token, self.clock())
            if principal is not None:
                return principal
        return self.access.guest
