"""Same-origin check for websocket and SockJS connections. Sans-IO.

OctoPrint accepts a connection without ``Origin`` or from the same origin (scheme, host and
port, case-insensitive) and answers anything else 403, unless ``api.allowCrossOrigin`` is set
(octoprint-push.md §1.3). A browser always sends ``Origin`` on a websocket handshake, so this
stops other web pages from opening a socket with the user's cookies.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(host: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{host}")
        return (parts.hostname or "").lower(), parts.port or default_port
    except ValueError:
        return None


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request with these ``Origin`` and ``Host`` headers comes from the server's own page.

    No ``Origin`` counts as same-origin (not a browser). ``Origin: null`` and anything that does
    not parse does not. The server speaks plain HTTP, so the origin's scheme must be ``http``.
    """
    if origin is None:
        return True
    if host is None:
        return False
    try:
        parts = urlsplit(origin.strip())
        origin_port = parts.port
    except ValueError:
        return False
    if parts.scheme.lower() != "http" or not parts.hostname or parts.path not in ("", "/"):
        return False
    server = _host_port(host.strip(), DEFAULT_PORTS["http"])
    return server == (parts.hostname.lower(), origin_port or DEFAULT_PORTS["http"])
