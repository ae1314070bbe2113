"""The real npm sockjs-client (1.6.x) against octotrio: in node with every transport it has there,
and in headless Chromium with every browser transport, plus the status page at ``/``.

One node process per environment runs every scenario of every transport concurrently
(tests/js/sockjs_node.mjs; tests/js/sockjs_browser.mjs starts Debian's Chromium once through
playwright-core, a browser context per transport) against one ``octotrio serve
--sockjs-test-services`` process; each test checks one part of what a client saw. Needs ``npm ci``
and ``/usr/bin/chromium`` (``make test`` installs both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .js.harness import ECHO_MESSAGES, SETUP_HINT, run_node, running_server

CHROMIUM = Path("/usr/bin/chromium")

NODE_TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling", "eventsource"]
"""Every transport sockjs-client can run in node (sockjs-protocol.md §13)."""

BROWSER_TRANSPORTS = [
    *NODE_TRANSPORTS,
    "htmlfile",
    "iframe-eventsource",
    "iframe-htmlfile",
    "iframe-xhr-polling",
    "jsonp-polling",
]
"""Every transport sockjs-client 1.6 runs in a current browser (sockjs-protocol.md §13; the
``xdr-*`` ones need Internet Explorer's XDomainRequest)."""

RUN_TIMEOUT = 100.0
"""Hang guard for one environment's whole run, in seconds; each scenario gives up after 20 s itself."""

CLIENTS = [("node", t) for t in NODE_TRANSPORTS] + [("browser", t) for t in BROWSER_TRANSPORTS]


def _run(script: str, transports: list[str]) -> Iterator[dict[str, Any]]:
    with running_server() as server:
        arguments = {
            "base": server.url,
            "apiKey": server.api_key,
            "transports": transports,
            "messages": ECHO_MESSAGES,
        }
        yield run_node(script, arguments, timeout=RUN_TIMEOUT)


@pytest.fixture(scope="module")
def node() -> Iterator[dict[str, Any]]:
    """What the node client saw, by transport: ``{"echo": ..., "close": ..., "push": ...}``."""
    yield from _run("sockjs_node.mjs", NODE_TRANSPORTS)


@pytest.fixture(scope="module")
def browser() -> Iterator[dict[str, Any]]:
    """What the browser saw, by transport: ``{"echo", "close", "push", "errors", "page"}``."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: {SETUP_HINT}")
    yield from _run("sockjs_browser.mjs", BROWSER_TRANSPORTS)


def seen_by(request: pytest.FixtureRequest, environment: str, transport: str) -> dict[str, Any]:
    seen: dict[str, Any] = request.getfixturevalue(environment)[transport]
    return seen


@pytest.mark.parametrize(("environment", "transport"), CLIENTS)
def test_echo_returns_every_escaping_sensitive_message_unchanged(
    request: pytest.FixtureRequest, environment: str, transport: str
) -> None:
    seen = seen_by(request, environment, transport)
    echo = seen["echo"]
    assert echo["transport"] == transport, (echo, seen.get("errors"))
    assert echo["echoes"] == ECHO_MESSAGES, echo["close"]
    assert echo["close"] == {"code": 1000, "reason": "Normal closure"}


@pytest.mark.parametrize(("environment", "transport"), CLIENTS)
def test_server_close_reaches_the_client_with_its_code(
    request: pytest.FixtureRequest, environment: str, transport: str
) -> None:
    seen = seen_by(request, environment, transport)
    close = seen["close"]
    assert close["opened"], (close, seen.get("errors"))
    assert close["transport"] == transport
    assert close["close"] == {"code": 3000, "reason": "Go away!"}


@pytest.mark.parametrize(("environment", "transport"), CLIENTS)
def test_push_api_sends_connected_then_history_and_current_after_login(
    request: pytest.FixtureRequest, environment: str, transport: str
) -> None:
    seen = seen_by(request, environment, transport)
    push = seen["push"]
    assert push["transport"] == transport, (push, seen.get("errors"))
    types = push["types"]
    assert types[0] == "connected"
    # After the socket's login: the events backlogged before it, then history, then current.
    assert "history" in types, push
    history = types.index("history")
    assert set(types[1:history]) <= {"event", "plugin"}
    assert types[history:].count("current") >= 2  # polling batches may carry more than one
    assert push["state"]  # the printer's state text, e.g. "Operational"


@pytest.mark.parametrize("transport", BROWSER_TRANSPORTS)
def test_status_page_shows_live_updates(browser: dict[str, Any], transport: str) -> None:
    page = browser[transport]["page"]
    assert page["updatesArrived"], page
    assert page["transport"] == transport
    assert page["link"] == f"connected via {transport}"
    assert page["state"] not in ("", "unknown")  # "unknown" is the page's text before any message
    assert page["heaters"] >= 1  # the legend of the temperature chart
    assert page["logLines"] >= 1  # the terminal log
    assert page["errors"] == []
