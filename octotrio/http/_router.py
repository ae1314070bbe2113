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
class _Route:
    pattern: re.Pattern[str]
    handlers: Mapping[str, Handler]
    max_body_bytes: int


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
    ) -> None:
        """Route paths that fully match ``path_pattern`` to ``handlers`` by method (``"GET"``...).

        Escape literal parts with :func:`re.escape`; the path is the raw one, before
        percent-decoding and without the query string. Requests with a body over
        ``max_body_bytes`` are answered 413 before any handler runs.
        """
        self._routes.append(_Route(re.compile(path_pattern), dict(handlers), max_body_bytes))

    def max_body_bytes(self, path: str) -> int:
        """The body limit of the route for ``path`` (the default when no route matches)."""
        for route in self._routes:
            if route.pattern.fullmatch(path):
                return route.max_body_bytes
        return DEFAULT_MAX_BODY_BYTES

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
