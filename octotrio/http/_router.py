"""Routes: which handler answers which path and method."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from ._exchange import HttpExchange

Handler = Callable[[HttpExchange], Awaitable[None]]
"""Answers one request: calls :meth:`HttpExchange.respond` or takes the connection over with
:meth:`HttpExchange.accept_websocket`. Exceptions are logged by the server, which answers 500
if nothing was sent yet."""

NOT_FOUND_BODY = b"Not found.\n"

DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""Largest request body a route accepts unless it says otherwise; bigger ones get 413. SockJS
frames are bounded by ``MAX_CLIENT_FRAME_BYTES`` (64 KiB) and REST commands are small; routes
that take uploads raise their own limit."""


async def _not_found(exchange: HttpExchange) -> None:
    await exchange.respond(404, [("Content-Type", "text/plain; charset=UTF-8")], NOT_FOUND_BODY)


async def _method_not_allowed(exchange: HttpExchange, *, allow: str) -> None:
    # W2: no Content-Type and an empty body.
    await exchange.respond(405, [("Allow", allow)])


@dataclass(frozen=True)
class BodyRules:
    """How the server takes the body of a request to one route."""

    max_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest body accepted; bigger ones are answered 413."""
    streamed: bool = False
    """False: the server reads the body whole into ``Request.body`` before the handler runs.
    True: the handler reads it from ``HttpExchange.body`` as it goes."""


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    handlers: Mapping[str, Handler]
    body_rules: BodyRules


class Router:
    """Maps a request's path and method to a handler; routes are tried in the order added.

    Paths are matched whole against a regular expression; its named groups become
    ``exchange.path_params``. A path no route matches gets 404; a path whose route has no
    handler for the method gets 405 with ``Allow`` listing the methods it has.
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self,
        path_pattern: str,
        handlers: Mapping[str, Handler],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        stream_body: bool = False,
    ) -> None:
        """Route paths that fully match ``path_pattern`` to ``handlers`` by method (``"GET"``...).

        Escape literal parts with :func:`re.escape`; the path is the raw one, before
        percent-decoding and without the query string. Requests with a body over
        ``max_body_bytes`` are answered 413: before any handler runs, or, with ``stream_body``
        (for uploads: the body is never whole in memory), when the handler reading
        ``exchange.body`` gets that far (:class:`~octotrio.http.RequestBodyError`).
        """
        rules = BodyRules(max_body_bytes, stream_body)
        self._routes.append(_Route(re.compile(path_pattern), dict(handlers), rules))

    def body_rules(self, path: str) -> BodyRules:
        """How to take the body of a request for ``path`` (the defaults when no route matches)."""
        for route in self._routes:
            if route.pattern.fullmatch(path):
                return route.body_rules
        return BodyRules()

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler for ``method`` and ``path`` and the path parameters it gets."""
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            handler = route.handlers.get(method)
            if handler is None:
                return partial(_method_not_allowed, allow=", ".join(route.handlers)), {}
            return handler, match.groupdict()
        return _not_found, {}
