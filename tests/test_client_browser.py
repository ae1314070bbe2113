"""The real sockjs-client bundle in headless Chromium against octotrio, with every browser
transport, and the status page at ``/`` with each of them selected.

One node process (tests/js/sockjs_browser.mjs) starts Debian's Chromium once through
playwright-core and runs every transport concurrently, each in a browser context and on a host
name of its own, against one ``octotrio serve --sockjs-test-services`` process. Needs ``npm ci``
and ``/usr/bin/chromium`` (``make test`` installs both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .js.harness import ECHO_MESSAGES, SETUP_HINT, run_node, running_server

CHROMIUM = Path("/usr/bin/chromium")

BROWSER_TRANSPORTS = [
    "websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "htmlfile",
    "iframe-eventsource",
    "iframe-htmlfile",
    "iframe-xhr-polling",
    "jsonp-polling",
]
"""Every transport sockjs-client 1.6 runs in a current browser (sockjs-protocol.md §13; the
``xdr-*`` ones need Internet Explorer's XDomainRequest)."""

BROWSER_RUN_TIMEOUT = 100.0
"""Hang guard for the whole browser run, in seconds; each scenario gives up after 20 s itself."""


@pytest.fixture(scope="module")
def seen() -> Iterator[dict[str, Any]]:
    """What the browser saw, by transport: ``{"echo", "close", "push", "errors", "page"}``."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: {SETUP_HINT}")
    with running_server() as server:
        arguments = {
            "base": server.url,
            "apiKey": server.api_key,
            "transports": BROWSER_TRANSPORTS,
            "messages": ECHO_MESSAGES,
        }
        yield run_node("sockjs_browser.mjs", arguments, timeout=BROWSER_RUN_TIMEOUT)


@pytest.mark.parametrize("transport", BROWSER_TRANSPORTS)
def test_echo_returns_every_escaping_sensitive_message_unchanged(
    seen: dict[str, Any], transport: str
) -> None:
    echo = seen[transport]["echo"]
    assert echo["transport"] == transport, (echo, seen[transport]["errors"])
    assert echo["echoes"] == ECHO_MESSAGES, echo["close"]
    assert echo["close"] == {"code": 1000, "reason": "Normal closure"}


@pytest.mark.parametrize("transport", BROWSER_TRANSPORTS)
def test_server_close_reaches_the_client_with_its_code(seen: dict[str, Any], transport: str) -> None:
    close = seen[transport]["close"]
    assert close["transport"] == transport, (close, seen[transport]["errors"])
    assert close["close"] == {"code": 3000, "reason": "Go away!"}


@pytest.mark.parametrize("transport", BROWSER_TRANSPORTS)
def test_push_api_sends_connected_then_history_and_current_after_login(
    seen: dict[str, Any], transport: str
) -> None:
    push = seen[transport]["push"]
    assert push["transport"] == transport, (push, seen[transport]["errors"])
    types = push["types"]
    assert types[0] == "connected"
    # After the socket's login: the events backlogged before it, then history, then current.
    assert "history" in types, push
    history = types.index("history")
    assert set(types[1:history]) <= {"event", "plugin"}
    assert types[history:].count("current") >= 2  # polling batches may carry more than one
    assert push["state"]


@pytest.mark.parametrize("transport", BROWSER_TRANSPORTS)
def test_status_page_shows_live_updates(seen: dict[str, Any], transport: str) -> None:
    page = seen[transport]["page"]
    assert page["updatesArrived"], page
    assert page["transport"] == transport
    assert page["link"] == f"connected via {transport}"
    assert page["state"] not in ("", "unknown")  # "unknown" is the page's text before any message
    assert page["heaters"] >= 1  # the legend of the temperature chart
    assert page["logLines"] >= 1  # the terminal log
    assert page["errors"] == []
