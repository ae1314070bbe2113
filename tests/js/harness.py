"""Start an octotrio server, run a node script against it, read back what the script saw."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent
REPOSITORY = SCRIPTS.parents[1]
NODE_MODULES = REPOSITORY / "node_modules"
SETUP_HINT = "run `scripts/install-deps.sh --chromium` (make test does) to install them"

SERVER_START_TIMEOUT = 30.0
"""Hang guard for the server's start (the virtual printer and a port): seconds, never a claim."""

SERVER_STOP_TIMEOUT = 10.0
"""Seconds the server gets to shut down in order after SIGTERM before it is killed."""

ECHO_MESSAGES = [
    "",
    "plain ASCII",
    '"quotes", \\backslashes\\ and /slashes/',
    "\u2028\u2029",  # J1: line and paragraph separators end a JavaScript string literal
    "\u200c\u200f\u2028\u202f\u2060\u206f\ufff0\uffff",  # J1: the ranges that must be escaped
    "\ud800",  # J2: lone surrogates, which UTF-8 cannot encode
    "\udfff and \ud83d alone",
    "\U0001f600 \U0001f5a8 emoji, a valid surrogate pair each",
    "%41 is not A",  # J5: eventsource runs decodeURI() on every event
    "100%",  # J5: decodeURI("100%") throws URIError
    "%%25%0A",
    "\x00\x01\x1f\x7f control characters",
    "\r\n\n\r",  # J5: eventsource lines end at \r and \n
    "data: x\r\n\r\n",
    "</script><script>p('injected')</script>",  # J4: htmlfile carries frames in <script>
    'a["not a frame"]',
    'c[3000,"Go away!"]',
    "h",
    "[]",
    "x" * 1000,  # with the next ones, over the echo service's 4096-byte response limit:
    "y" * 1000,  # streaming transports must reconnect in the middle of the session (S7)
    "z" * 1000,
    "\u00e9" * 2000,
]
"""Messages the echo scenarios send: each must come back exactly, through every transport."""


def require_node_modules() -> None:
    """Fail with advice (rather than a node stack trace) when the npm packages are missing."""
    if not (NODE_MODULES / "sockjs-client").is_dir():
        raise RuntimeError(f"the npm packages are not installed in {NODE_MODULES}: {SETUP_HINT}")


@dataclass(frozen=True)
class Server:
    """A running ``octotrio serve``: its base URL and its global API key."""

    url: str
    api_key: str


@contextlib.contextmanager
def running_server() -> Iterator[Server]:
    """Run ``octotrio serve --port 0 --sockjs-test-services`` with a fresh API key.

    The server is a separate process with the built-in virtual printer, as a user runs it. On
    exit it gets SIGTERM (an ordered shutdown) and is killed if that takes too long.
    """
    api_key = secrets.token_hex(16)
    command = [sys.executable, "-m", "octotrio", "--log-level", "WARNING", "serve", "--port", "0"]
    command += ["--sockjs-test-services", "--api-key", api_key]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPOSITORY) as server:
        try:
            yield Server(_read_url(server), api_key)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                server.kill()


def _read_url(server: subprocess.Popen[str]) -> str:
    """The URL from the server's first line, "octotrio X serving on http://127.0.0.1:PORT ..."."""
    assert server.stdout is not None
    # A hang guard: a server that does not report in time is killed, and readline() returns.
    killer = threading.Timer(SERVER_START_TIMEOUT, server.kill)
    killer.start()
    try:
        line = server.stdout.readline()
    finally:
        killer.cancel()
    match = re.search(r"serving on (http://\S+)", line)
    if match is None:
        raise RuntimeError(f"the server did not start: {line!r} (exit code {server.poll()})")
    return match.group(1)


def run_node(script: str, arguments: dict[str, Any], *, timeout: float) -> Any:
    """Run ``tests/js/<script>`` with ``arguments`` as JSON on stdin; return its JSON output.

    ``timeout`` is a hang guard in seconds: the scripts bound their own scenarios well within it.
    """
    require_node_modules()
    completed = subprocess.run(
        ["node", str(SCRIPTS / script)],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPOSITORY,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{script} failed with exit code {completed.returncode}:\n{completed.stderr}")
    return json.loads(completed.stdout)
