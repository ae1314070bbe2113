"""Refusing cross-origin websocket and SockJS connections (octoprint-push.md §1.3).

The check sits in front of the SockJS routes as a :class:`~octotrio.http.Router` that answers
403 before any transport handler runs, so every transport (websocket, raw websocket and the
polling ones) is covered without the SockJS layer knowing about origins.
"""

from __future__ import annotations

import re

from octotrio.auth import same_origin
from octotrio.http import Handler, HttpExchange, Router

CROSS_ORIGIN_REFUSED = b"Cross-origin connections are not allowed (set access.allow_cross_origin)\n"


async def _refuse_cross_origin(exchange: HttpExchange) -> None:
    await exchange.respond(403, [("Content-Type", "text/plain; charset=UTF-8")], CROSS_ORIGIN_REFUSED)


class OriginCheckingRouter(Router):
    """A router that answers 403 to a request for a SockJS transport under ``prefix`` whose
    ``Origin`` is not the server's own, unless ``allow_cross_origin``."""

    def __init__(self, *, prefix: str = "/sockjs", allow_cross_origin: bool = False) -> None:
        super().__init__()
        base = re.escape(prefix)
        # The raw websocket and every /<server>/<session>/<transport> URL (SockJS U4-U6).
        self._transports = re.compile(f"{base}/websocket|{base}/[^/.]+/[^/.]+/[^/]+")
        self._allow_cross_origin = allow_cross_origin

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        handler, params = super().resolve(method, path)
        if self._allow_cross_origin or not self._transports.fullmatch(path):
            return handler, params

        async def checked(exchange: HttpExchange) -> None:
            request = exchange.request
            if same_origin(request.header("origin"), request.header("host")):
                await handler(exchange)
            else:
                await _refuse_cross_origin(exchange)

        return checked, params
