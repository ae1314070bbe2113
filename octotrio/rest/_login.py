"""``POST /api/login``, ``POST /api/logout``, ``GET /api/currentuser`` and ``GET /login`` (§12.1-12.2).

``GET /login`` sets the CSRF cookie a browser-style client needs before a password login (an
API-key client needs none). A login answers the user record with ``session``; ``name:session``
authenticates a push socket (``{"auth": "alice:<session>"}``). Failed password logins are rate
limited per client address (3/min, 5/10 min, 10/h, as OctoPrint) with 429.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import trio

from octotrio.auth import AccessControl, Principal
from octotrio.http import HttpExchange, Router
from octotrio.state import JSONObject, StateHub

from ._auth import AccessAuthenticator, new_csrf_cookie, session_token, set_cookie
from ._common import ApiError, Call, endpoint

MAX_CREDENTIAL_CHARS = 1024
"""Longer user names or passwords are refused (400) before any hashing: scrypt's cost does
not depend on the length, but nobody needs more, and it bounds what a request can make us hold."""


def user_record(principal: Principal) -> JSONObject:
    """``/api/currentuser``: name (null when anonymous), permission keys, group keys."""
    return {
        "name": None if principal.anonymous else principal.name,
        "permissions": principal.permission_keys(),
        "groups": sorted(principal.groups),
    }


def login_record(principal: Principal, session: str, mechanism: str, now: datetime.datetime) -> JSONObject:
    """The login answer, with OctoPrint's keys (§12.2)."""
    permissions = principal.permission_keys()
    return {
        "_credentials_seen": now.isoformat(timespec="seconds"),
        "_is_external_client": False,
        "_login_mechanism": mechanism,
        "active": True,
        "admin": principal.has("ADMIN"),
        "apikey": principal.api_key,
        "groups": sorted(principal.groups),
        "name": principal.name,
        "needs": {"group": sorted(principal.groups), "role": [key.lower() for key in permissions]},
        "permissions": permissions,
        "roles": ["user", "admin"] if principal.has("ADMIN") else ["user"],
        "session": session,
        "settings": {},
        "user": True,
    }


class LoginEndpoints:
    """The login routes of one server; UserLoggedIn/UserLoggedOut go to ``hub`` (ADMIN-only events)."""

    def __init__(
        self,
        authenticator: AccessAuthenticator,
        hub: StateHub,
        wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.authenticator = authenticator
        self.access: AccessControl = authenticator.access
        self.hub = hub
        self.wall_clock = wall_clock

    def add_routes(self, router: Router) -> None:
        auth = self.authenticator
        router.add(r"/api/login", {"POST": endpoint(auth, self.login, permissions=())})
        router.add(r"/api/logout", {"POST": endpoint(auth, self.logout, permissions=())})
        router.add(r"/api/currentuser", {"GET": endpoint(auth, self.current_user, permissions=())})
        router.add(r"/login", {"GET": self.login_page})

    async def login_page(self, exchange: HttpExchange) -> None:
        headers = [("Content-Type", "text/plain; charset=UTF-8"), ("Cache-Control", "no-store")]
        headers.append(new_csrf_cookie(exchange.request))
        await exchange.respond(
            200, headers, b"POST /api/login with X-CSRF-Token set to the csrf_token cookie\n"
        )

    async def login(self, call: Call) -> object:
        body = call.json_body()
        if "user" in body and "pass" in body:
            principal = await self._check_password(call, body["user"], body["pass"])
            mechanism = "password"
        elif "passive" in body:
            if call.principal.anonymous:
                raise ApiError(401, "Not logged in: send an API key or a session cookie")
            principal = call.principal
            mechanism = "apikey" if call.principal.api_key is not None else "password"
            existing = session_token(call.request)
            if mechanism == "password" and existing is not None:
                # A passive login on a session cookie confirms that session (no new one).
                return login_record(principal, existing, mechanism, self.wall_clock())
        else:
            raise ApiError(400, "Neither user and pass attributes nor passive flag present")
        session = self.access.create_session(principal, trio.current_time())
        if session is None:
            raise ApiError(503, "Too many login sessions in use, try again later")
        call.response_headers.append(set_cookie(call.request, "session", session, http_only=True))
        self.hub.publish_event("UserLoggedIn", {"username": principal.name})
        return login_record(principal, session, mechanism, self.wall_clock())

    async def _check_password(self, call: Call, user: object, password: object) -> Principal:
        if not isinstance(user, str) or not isinstance(password, str):
            raise ApiError(400, "user and pass must be strings")
        if len(user) > MAX_CREDENTIAL_CHARS or len(password) > MAX_CREDENTIAL_CHARS:
            raise ApiError(400, "user or pass too long")
        address = call.exchange.remote_address
        limiter = self.access.failed_logins
        if not limiter.allowed(address, trio.current_time()):
            raise ApiError(429, "Too many failed login attempts, try again later")
        # scrypt spends ~50 ms of CPU and 16 MiB on purpose: keep it off the event loop.
        principal = await trio.to_thread.run_sync(self.access.check_password, user, password)
        if principal is None:
            limiter.record_failure(address, trio.current_time())
            raise ApiError(403, "User unknown or password incorrect")
        return principal

    async def logout(self, call: Call) -> object:
        token = session_token(call.request)
        if token is not None:
            principal = self.access.logout(token)
            if principal is not None:
                self.hub.publish_event("UserLoggedOut", {"username": principal.name})
            call.response_headers.append(set_cookie(call.request, "session", "", http_only=True))
        return user_record(self.access.guest)

    async def current_user(self, call: Call) -> object:
        return user_record(call.principal)
