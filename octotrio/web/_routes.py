"""Routes of the status page: the page, its script and style, and the sockjs-client bundle."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import trio

from octotrio.http import HttpExchange, Router

SOCKJS_CLIENT_URL = "/static/sockjs.min.js"
"""Where the sockjs-client bundle is served. The SockJS iframe page loads it from here too
(H4), so iframe transports work without any outside network."""

_BUNDLE_IN_PACKAGE = ("sockjs-client", "dist", "sockjs.min.js")
"""The minified browser bundle inside the npm package."""

_STATIC_DIR = Path(__file__).parent / "static"

_STATIC_FILES = {
    "/": ("index.html", "text/html; charset=UTF-8"),
    "/static/status.js": ("status.js", "text/javascript; charset=UTF-8"),
    "/static/status.css": ("status.css", "text/css; charset=UTF-8"),
}
"""Path → (file in ``octotrio/web/static``, Content-Type)."""

# Browsers revalidate on every load: the page is served from a developer's working tree and
# changes with it; a stale cached script would show an old page with a new server.
_NO_CACHE = ("Cache-Control", "no-cache")

_MISSING_BUNDLE = (
    "sockjs-client is not installed: {path} is missing.\n"
    "Run `npm ci` in the repository root (`make test` does it), then reload.\n"
)


def default_node_modules() -> Path:
    """``node_modules`` of the repository this package is run from (``npm ci`` puts it there)."""
    return Path(__file__).resolve().parents[2] / "node_modules"


async def _serve_static(exchange: HttpExchange, *, name: str, content_type: str) -> None:
    body = await trio.Path(_STATIC_DIR / name).read_bytes()
    await exchange.respond(200, [("Content-Type", content_type), _NO_CACHE], body)


async def _serve_bundle(exchange: HttpExchange, *, bundle: Path) -> None:
    try:
        body = await trio.Path(bundle).read_bytes()
    except FileNotFoundError:
        message = _MISSING_BUNDLE.format(path=bundle)
        headers = [("Content-Type", "text/plain; charset=UTF-8"), ("Retry-After", "60")]
        await exchange.respond(503, headers, message.encode())
        return
    await exchange.respond(200, [("Content-Type", "text/javascript; charset=UTF-8"), _NO_CACHE], body)


def add_routes(router: Router, *, node_modules: Path | None = None) -> None:
    """Serve the status page at ``/`` and its files under ``/static/``.

    ``node_modules`` is where ``npm ci`` installed the packages of ``package.json`` (default:
    :func:`default_node_modules`). It is looked at on each request, so installing it while the
    server runs turns the 503 of :data:`SOCKJS_CLIENT_URL` into the bundle.
    """
    for path, (name, content_type) in _STATIC_FILES.items():
        router.add(re.escape(path), {"GET": partial(_serve_static, name=name, content_type=content_type)})
    bundle = (node_modules or default_node_modules()).joinpath(*_BUNDLE_IN_PACKAGE)
    router.add(re.escape(SOCKJS_CLIENT_URL), {"GET": partial(_serve_bundle, bundle=bundle)})
