"""An in-memory :class:`~octotrio.sockjs.SockJSConnection` for testing applications without sockets."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from octotrio.sockjs import ConnectionClosed


@dataclass
class Received:
    """One message the application sent, decoded, with the (fake) time it was sent."""

    time: float
    message: dict[str, Any]

    @property
    def type(self) -> str:
        (message_type,) = self.message
        return message_type


@dataclass
class MemoryConnection:
    """Records what the application sends; delivers what the test puts in ``client_messages``."""

    remote_address: str = "127.0.0.1"
    sent: list[Received] = field(default_factory=list)
    closed_with: tuple[int, str] | None = None

    def __post_init__(self) -> None:
        self.to_server, self._from_client = trio.open_memory_channel[str](16)

    def _record(self, messages: Sequence[str]) -> None:
        now = trio.current_time()
        self.sent.extend(Received(now, json.loads(m)) for m in messages)

    def send_nowait(self, messages: Sequence[str]) -> bool:
        if self.closed_with is not None:
            return False
        self._record(messages)
        return True

    async def send(self, messages: Sequence[str]) -> None:
        if self.closed_with is not None:
            raise ConnectionClosed
        self._record(messages)
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str:
        try:
            return await self._from_client.receive()
        except trio.EndOfChannel:
            raise ConnectionClosed from None

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        await trio.lowlevel.checkpoint()

    def of_type(self, message_type: str) -> list[Received]:
        return [r for r in self.sent if r.type == message_type]
