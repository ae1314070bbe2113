"""What the server knows about one HTTP request once it has been read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    """An HTTP request: its head, and its body unless the route streams the body (then ``body``
    is empty and the handler reads ``HttpExchange.body``).

    ``path`` is the target without its query string, exactly as sent (not percent-decoded:
    SockJS session ids such as ``abcdefgh_i-j%20`` are opaque, U4); ``query`` is what followed
    the ``?`` (SockJS ignores it, U9). Header names are lowercase, as h11 delivers them.
    """

    method: str
    path: str
    query: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    @classmethod
    def from_target(
        cls, method: str, target: str, headers: tuple[tuple[bytes, bytes], ...], body: bytes
    ) -> Request:
        """Build a request from its request-line target (``/path?query``)."""
        path, _, query = target.partition("?")
        return cls(method, path, query, headers, body)

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), repeated fields joined with ``", "``
        (RFC 9110 §5.3); None when absent."""
        wanted = name.lower().encode("ascii")
        values = [value.decode("latin-1") for key, value in self.headers if key == wanted]
        return ", ".join(values) if values else None
