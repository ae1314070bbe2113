"""The services of the SockJS protocol test suite and of sockjs-client's own tests.

``octotrio serve --sockjs-test-services`` mounts them at the server root, beside the push API
at ``/sockjs``:

* ``/echo``: sends every message back; streaming responses end after 4096 bytes, so that the
  client's reconnection is exercised (S7).
* ``/close``: closes every session at once with ``c[3000,"Go away!"]``.
* ``/disabled_websocket_echo``: echo without the websocket transports; ``/info`` says so.
* ``/cookie_needed_echo``: echo with ``cookie_needed`` and the ``JSESSIONID`` cookie.
"""

from __future__ import annotations

import dataclasses

from ._connection import SockJSApp, SockJSConnection
from ._frames import encode_string
from ._options import SockJSOptions

ECHO_RESPONSE_LIMIT = 4096
"""The response limit of the echo services, as in sockjs-node's test server: small, so that a
few messages make a streaming transport reconnect."""


async def echo(connection: SockJSConnection) -> None:
    """Send every message back as it came (a JSON string); ends when the session does."""
    while True:
        message = await connection.receive()
        await connection.send([encode_string(message)])


async def close_at_once(connection: SockJSConnection) -> None:
    """Close the session with the protocol's example close (F3)."""
    await connection.close(3000, "Go away!")


def sockjs_test_services(options: SockJSOptions) -> dict[str, tuple[SockJSApp, SockJSOptions]]:
    """The test services by prefix, with their options derived from ``options``."""
    echo_options = dataclasses.replace(options, response_limit=ECHO_RESPONSE_LIMIT)
    return {
        "/echo": (echo, echo_options),
        "/close": (close_at_once, echo_options),
        "/disabled_websocket_echo": (echo, dataclasses.replace(echo_options, websocket=False)),
        "/cookie_needed_echo": (echo, dataclasses.replace(echo_options, cookie_needed=True)),
    }
