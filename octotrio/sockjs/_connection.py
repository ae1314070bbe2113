"""The contract between the SockJS layer and the application that runs over it.

The SockJS layer (framing, sessions, transports) hands the application one
:class:`SockJSConnection` per session and knows nothing about printers. The push API
(``octotrio.push``) is such an application; the protocol test services are others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar, cast

_T = TypeVar("_T")


class SharedMessage(str):
    """An encoded message the application sends unchanged to many sessions (a tick's ``current``,
    ``connected``): a transport keeps on it what it derives from it (its ``a[...]`` frame, the
    bytes of its websocket frame), so the message is framed once and every session writes the same
    bytes object instead of a copy of its own. What is kept lives as long as the message does, a
    handful of encodings (one per kind of transport)."""

    _derived: dict[Callable[[str], object], object]

    def __new__(cls, text: str) -> SharedMessage:
        message = super().__new__(cls, text)
        message._derived = {}
        return message

    def derived(self, derive: Callable[[str], _T]) -> _T:
        """``derive(self)``, computed at the first call with this ``derive`` and kept."""
        try:
            return cast(_T, self._derived[derive])
        except KeyError:
            value = self._derived[derive] = derive(self)
            return value


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
        frame. A :class:`SharedMessage` (alone in the batch, for a SockJS frame) is framed once
        for every session that sends it. Raises :class:`ConnectionClosed` when the session is
        over. Cancellable: a cancelled send may have delivered part of the batch.
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
