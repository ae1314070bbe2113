"""The real npm sockjs-client (1.6.x) in node against octotrio, with every transport it has there.

One node process runs every scenario of every transport concurrently (tests/js/sockjs_node.mjs)
against one ``octotrio serve --sockjs-test-services`` process; each test checks one part of
what the client saw. Needs ``npm ci`` (``make test`` runs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .js.harness import ECHO_MESSAGES, run_node, running_server

NODE_TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling", "eventsource"]
"""Every transport sockjs-client can run in node (sockjs-protocol.md §13)."""

NODE_RUN_TIMEOUT = 90.0
"""Hang guard for the whole node run, in seconds; each scenario gives up after 20 s itself."""


@pytest.fixture(scope="module")
def seen() -> Iterator[dict[str, Any]]:
    """What the client saw, by transport: ``{"echo": ..., "close": ..., "push": ...}``."""
    with running_server() as server:
        arguments = {
            "base": server.url,
            "apiKey": server.api_key,
            "transports": NODE_TRANSPORTS,
            "messages": ECHO_MESSAGES,
        }
        yield run_node("sockjs_node.mjs", arguments, timeout=NODE_RUN_TIMEOUT)


@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_echo_returns_every_escaping_sensitive_message_unchanged(
    seen: dict[str, Any], transport: str
) -> None:
    echo = seen[transport]["echo"]
    assert echo["transport"] == transport, echo
    assert echo["echoes"] == ECHO_MESSAGES, echo["close"]
    assert echo["close"] == {"code": 1000, "reason": "Normal closure"}


@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_server_close_reaches_the_client_with_its_code(seen: dict[str, Any], transport: str) -> None:
    close = seen[transport]["close"]
    assert close["opened"], close
    assert close["transport"] == transport
    assert close["close"] == {"code": 3000, "reason": "Go away!"}


@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_push_api_sends_connected_then_history_and_current_after_login(
    seen: dict[str, Any], transport: str
) -> None:
    push = seen[transport]["push"]
    assert push["transport"] == transport, push
    types = push["types"]
    assert types[0] == "connected"
    # After the socket's login: the events backlogged before it, then history, then current.
    assert "history" in types, push
    history = types.index("history")
    assert set(types[1:history]) <= {"event", "plugin"}
    assert types[history:].count("current") >= 2  # polling batches may carry more than one
    assert push["state"]  # the printer's state text, e.g. "Operational"
