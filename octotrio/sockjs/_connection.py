"""The contract between the SockJS layer and the application that runs over it.

The SockJS layer (framing, sessions, transports) hands the application one
:class:`SockJSConnection` per session and knows nothing about printers. The push API
(``octotrio.push``) is such an application; the protocol test services are others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol


class ConnectionClosed(Exception):
    """The session is over: the client went away, or the server closed it.

    Raised by :meth:`SockJSConnection.send` and :meth:`SockJSConnection.receive`; the
    application should end its session task when it sees it.
    """


class SockJSConnection(Protocol):
    """One client session, whatever transport carries it."""

    @property
    def remote_address(self) -> str:
        """The client's IP address, as OctoPrint reports it in ``ClientOpened``."""
        ...

    async def send(self, messages: Sequence[str]) -> None:
        """Send already-encoded JSON values to the client, in order, as one batch.

        On a SockJS transport the batch becomes ``a[<v1>,<v2>,...]`` (OctoPrint puts JSON
        objects, not strings, in the array); on the raw websocket each value is one text
        frame. Raises :class:`ConnectionClosed` when the session is over. Cancellable: a
        cancelled send may have delivered part of the batch.
        """
        ...

    def send_nowait(self, messages: Sequence[str]) -> bool:
        """Send ``messages`` as :meth:`send` does if that needs no waiting, and return True;
        return False, having done nothing, if it would wait (or raise): then call :meth:`send`.
        For fan-out: a tick can be served to thousands of idle sessions without waking a task
        for each."""
        ...

    async def receive(self) -> str:
        """Wait for the next message from the client and return its text.

        SockJS array framing is already removed: ``["a","b"]`` yields ``"a"`` then ``"b"``.
        Raises :class:`ConnectionClosed` when the session is over. Cancellable.
        """
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the session with ``c[code,"reason"]`` / a websocket close frame.

        Idempotent; never raises for a client that is already gone. Bounded in time: a client
        that does not read is dropped rather than waited for.
        """
        ...


SockJSApp = Callable[[SockJSConnection], Awaitable[None]]
"""An application: called once per new session; the session ends when it returns."""
