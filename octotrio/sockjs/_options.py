"""What can differ between two SockJS endpoints (sockjs-protocol.md §4, §7)."""

from __future__ import annotations

from dataclasses import dataclass

from ._frames import MAX_CLIENT_FRAME_BYTES
from ._session import DISCONNECT_DELAY, HEARTBEAT_INTERVAL, MAX_QUEUED_BYTES

RESPONSE_LIMIT = 128 * 1024
"""S7: bytes of frames after which a streaming response ends and the client reconnects; the
protocol's default (and OctoPrint's). Bounds what a proxy or a browser buffers per response."""

DEFAULT_SOCKJS_URL = "/static/sockjs.min.js"
"""H4: where the iframe page loads sockjs-client from; the status page serves the npm bundle
there."""


@dataclass(frozen=True)
class SockJSOptions:
    """The settings of one SockJS endpoint.

    * ``websocket``: offer the websocket transports; when False, ``/info`` says so and the
      websocket URLs are not found (I2).
    * ``cookie_needed``: ``/info`` says so and every session transport sets
      ``JSESSIONID`` (the request's value, else ``dummy``) for sticky load balancers.
    * ``heartbeat_interval``: seconds between ``h`` frames (S9).
    * ``disconnect_delay``: seconds a session without a receiver lives on (S4).
    * ``response_limit``: frame bytes after which a streaming response ends (S7).
    * ``sockjs_url``: the script the iframe page loads; must start with ``/`` or ``http`` (H4).
    * ``max_queued_bytes``: message bytes a session holds for its client before it closes (see
      :data:`~octotrio.sockjs.MAX_QUEUED_BYTES`).
    * ``max_message_bytes``: the largest client frame accepted (websocket message, xhr_send
      body; jsonp_send may be three times as large, being percent-encoded).
    """

    websocket: bool = True
    cookie_needed: bool = False
    heartbeat_interval: float = HEARTBEAT_INTERVAL
    disconnect_delay: float = DISCONNECT_DELAY
    response_limit: int = RESPONSE_LIMIT
    sockjs_url: str = DEFAULT_SOCKJS_URL
    max_queued_bytes: int = MAX_QUEUED_BYTES
    max_message_bytes: int = MAX_CLIENT_FRAME_BYTES

    def __post_init__(self) -> None:
        if not self.sockjs_url.startswith(("/", "http")):
            raise ValueError(f"sockjs_url must start with '/' or 'http': {self.sockjs_url!r}")
        if self.response_limit < 1:
            raise ValueError(f"response_limit must be positive: {self.response_limit}")
