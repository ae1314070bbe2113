"""What every REST endpoint shares: authentication, JSON bodies, OctoPrint-style errors.

A REST handler is a plain async function that gets a :class:`Call` and returns the JSON body
to answer with (``None`` for 204 No Content), or raises :class:`ApiError`. :func:`endpoint`
turns it into an HTTP handler that checks the caller's permission first, so no endpoint can
forget to.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from octotrio.auth import Principal as Principal
from octotrio.http import Handler, HttpExchange, Request, RequestBodyError

log = logging.getLogger(__name__)

JSON_CONTENT_TYPE = ("Content-Type", "application/json")


class ApiError(Exception):
    """Answer the call with ``status`` and ``{"error": message}``, as OctoPrint does."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Created:
    """Answer the call with 201 Created, ``body`` and ``Location: location`` (an upload)."""

    body: object
    location: str


class Authenticator(Protocol):
    """Decides who made a request; None (or an anonymous :class:`Principal`, the guests group)
    when nobody is authenticated. May raise :class:`ApiError` to refuse the request outright
    (a failed CSRF check answers 400)."""

    def authenticate(self, request: Request) -> Principal | None: ...


def request_api_key(request: Request) -> str | None:
    """The API key of a request: ``X-Api-Key``, ``Authorization: Bearer``, or ``?apikey=``."""
    if key := request.header("x-api-key"):
        return key
    authorization = request.header("authorization") or ""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    keys = parse_qs(request.query).get("apikey")
    return keys[0] if keys else None


ALL_PERMISSIONS = frozenset({"ADMIN"})
"""The global API key acts as an admin (OctoPrint's user ``_api``, groups admins and users)."""


class GlobalApiKey:
    """One key for the whole server (``octotrio serve --api-key``): its holder is user ``_api``."""

    def __init__(self, api_key: str) -> None:
        self._api_key = api_key.encode()

    def authenticate(self, request: Request) -> Principal | None:
        key = request_api_key(request)
        if key is not None and hmac.compare_digest(key.encode(), self._api_key):
            return Principal("_api", ALL_PERMISSIONS)
        return None


@dataclass(frozen=True)
class Call:
    """One authenticated REST call. Headers appended to ``response_headers`` (``Set-Cookie``,
    ``Location``) go out with the answer."""

    exchange: HttpExchange
    principal: Principal
    response_headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def request(self) -> Request:
        return self.exchange.request

    @property
    def path_params(self) -> dict[str, str]:
        return dict(self.exchange.path_params)

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object; 400 for anything else."""
        try:
            body = json.loads(self.request.body)
        except (ValueError, RecursionError):
            raise ApiError(400, "Malformed JSON body in request") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Expected a JSON object in the request body")
        return body


RestFunction = Callable[[Call], Awaitable[object]]


async def send_json(
    exchange: HttpExchange, status: int, body: object, headers: Collection[tuple[str, str]] = ()
) -> None:
    await exchange.respond(status, [JSON_CONTENT_TYPE, *headers], json.dumps(body).encode())


async def authorize(
    authenticator: Authenticator, exchange: HttpExchange, permissions: Collection[str]
) -> Principal | None:
    """The caller of ``exchange`` if they hold all of ``permissions``; otherwise the refusal has
    been answered and the result is None.

    Unauthenticated or unpermitted calls get 403 ``{"error": ...}`` (OctoPrint answers 403 for a
    missing key; anonymous callers hold the guests group's permissions); an :class:`ApiError` from
    the authenticator (a failed CSRF check) gets its status and ``{"error": message}``.
    """
    try:
        principal = authenticator.authenticate(exchange.request)
    except ApiError as error:
        await send_json(exchange, error.status, {"error": error.message})
        return None
    if principal is None or (principal.anonymous and not all(map(principal.has, permissions))):
        await send_json(exchange, 403, {"error": "You don't have the permission to access this resource"})
        return None
    missing = [p for p in permissions if not principal.has(p)]
    if missing:
        await send_json(exchange, 403, {"error": f"Missing permission: {', '.join(missing)}"})
        return None
    return principal


def endpoint(
    authenticator: Authenticator, function: RestFunction, *, permissions: Collection[str] = ("STATUS",)
) -> Handler:
    """An HTTP handler that checks the caller holds ``permissions`` (:func:`authorize`), then runs
    ``function``.

    ``function`` returns the JSON body for 200, or None for 204; an :class:`ApiError` becomes its
    status and ``{"error": message}``, and so does a :class:`RequestBodyError` from reading a
    streamed body (413 over the route's limit).
    """

    async def handle(exchange: HttpExchange) -> None:
        principal = await authorize(authenticator, exchange, permissions)
        if principal is None:
            return
        call = Call(exchange, principal)
        try:
            result = await function(call)
        except (ApiError, RequestBodyError) as error:
            await send_json(exchange, error.status, {"error": error.message}, call.response_headers)
            return
        if result is None:
            await exchange.respond(204, call.response_headers)
        elif isinstance(result, Created):
            await send_json(
                exchange, 201, result.body, [*call.response_headers, ("Location", result.location)]
            )
        else:
            await send_json(exchange, 200, result, call.response_headers)

    return handle
