"""A trio-websocket client for tests that own their TCP stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio_websocket import WebSocketConnection, wrap_client_stream


@asynccontextmanager
async def connect_websocket(
    port: int, path: str, *, message_queue_size: int = 1
) -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket client on ``ws://127.0.0.1:<port><path>``.

    Like ``open_websocket_url``, except that the test owns the TCP stream: trio-websocket 0.12
    never closes its stream when the server closes first (``aclose`` returns early once a close
    reason is known), which would fail these tests with a ResourceWarning.
    """
    async with trio.open_nursery() as nursery, await trio.open_tcp_stream("127.0.0.1", port) as stream:
        websocket = await wrap_client_stream(
            nursery, stream, "127.0.0.1", path, message_queue_size=message_queue_size
        )
        try:
            yield websocket
        finally:
            await websocket.aclose()
