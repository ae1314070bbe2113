"""A deliberately small push API server for testing the conformance suite: it behaves correctly
unless told to commit one fault. Built on octotrio.http (routing, SockJS framing) with its own push
logic, so a fault is exactly what the test asks for and nothing else."""

from __future__ import annotations

import copy
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio

from octotrio.http import HttpExchange, HttpServer, Router, serve_http
from octotrio.sockjs import ConnectionClosed, SockJSConnection

FIXTURES = Path(__file__).parent / "fixtures" / "octoprint-1.11.8"

FAKE_HEARTBEAT = 25.0
"""The SockJS heartbeat of the fakes: the protocol's default (S9)."""


@dataclass(frozen=True)
class Faults:
    """What the fake gets wrong; the defaults make a correct server."""

    interval: float = 0.5
    """Seconds between `current` pushes at throttle 1 (PUSH-RATE-1 wants 0.5)."""
    ignore_throttle: bool = False
    drop_current_field: str | None = None
    duplicate_logs: bool = False
    history_twice: bool = False
    crash_on_bad_input: bool = False
    """Non-object JSON from any client kills every session and refuses new ones."""
    leak_terminal: bool = False
    """`current` carries logs and messages to users without MONITOR_TERMINAL (PUSH-PERM-3)."""


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class _Session:
    connection: SockJSConnection
    throttle: int = 1
    token: str | None = None
    terminal: bool = False
    cursor: int = 0
    previous_logs: list[str] = field(default_factory=list)


class FakePushServer:
    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.tokens: dict[str, bool] = {}
        """Login session → whether its user has MONITOR_TERMINAL."""
        self.users: dict[str, tuple[str, bool]] = {}
        """Created users: name → (password, MONITOR_TERMINAL)."""
        self.log: list[str] = []
        self.sessions: list[_Session] = []
        self.crashed = trio.Event()
        self._connected = _load("connected.json")
        self._current = _load("current-idle-operational.json")["current"]
        self._history = _load("history-operational-late-join.json")["history"]

    def _snapshot(self, kind: str, logs: list[str], terminal: bool = True) -> str:
        payload = copy.deepcopy(self._current if kind == "current" else self._history)
        payload["serverTime"] = time.time()
        payload["logs"], payload["messages"], payload["temps"] = logs, [], []
        if kind == "current" and not terminal and not self.faults.leak_terminal:
            del payload["logs"], payload["messages"]
        if kind == "current" and self.faults.drop_current_field:
            payload.pop(self.faults.drop_current_field)
        return json.dumps({kind: payload})

    async def app(self, connection: SockJSConnection) -> None:
        if self.crashed.is_set():
            return
        session = _Session(connection)
        self.sessions.append(session)
        try:
            await connection.send([json.dumps({"connected": self._connected["connected"]})])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._receive, session)
                nursery.start_soon(self._push, session)
                await self.crashed.wait()
                nursery.cancel_scope.cancel()
        except ConnectionClosed:
            pass
        finally:
            self.sessions.remove(session)

    async def _receive(self, session: _Session) -> None:
        while True:
            text = await session.connection.receive()
            try:
                message = json.loads(text)
            except ValueError:
                continue
            if not isinstance(message, dict):
                if self.faults.crash_on_bad_input:
                    self.crashed.set()
                continue
            if "auth" in message:
                await self._auth(session, message["auth"])
            elif "throttle" in message:
                value = message["throttle"]
                if isinstance(value, int) and value >= 1 and not self.faults.ignore_throttle:
                    session.throttle = value

    async def _auth(self, session: _Session, value: object) -> None:
        if not isinstance(value, str) or value.count(":") != 1:
            return
        token = value.split(":")[1]
        if token not in self.tokens:
            await session.connection.send([json.dumps({"reauthRequired": {"reason": "stale"}})])
            return
        first = session.token is None
        session.token, session.terminal = token, self.tokens[token]
        if first:
            session.cursor = len(self.log)
            histories = 2 if self.faults.history_twice else 1
            await session.connection.send([self._snapshot("history", [])] * histories)
            await session.connection.send([json.dumps({"timelapse": None})])

    async def _push(self, session: _Session) -> None:
        while True:
            await trio.sleep(self.faults.interval * session.throttle)
            if session.token is None:
                continue
            logs = self.log[session.cursor :]
            session.cursor = len(self.log)
            sent = (session.previous_logs + logs) if self.faults.duplicate_logs else logs
            session.previous_logs = logs
            await session.connection.send([self._snapshot("current", sent, session.terminal)])

    async def login(self, exchange: HttpExchange) -> None:
        request = json.loads(exchange.request.body or b"{}")
        token = secrets.token_hex(32)
        if "user" in request:
            password, terminal = self.users.get(request["user"], (None, False))
            if password is None or password != request.get("pass"):
                await exchange.respond(403)
                return
            self.tokens[token] = terminal
            body = {"name": request["user"], "session": token, "admin": False, "permissions": ["STATUS"]}
        else:
            self.tokens[token] = True
            body = {"name": "admin", "session": token, "admin": True, "permissions": ["ADMIN", "STATUS"]}
        await exchange.respond(200, [("Content-Type", "application/json")], json.dumps(body).encode())

    async def add_user(self, exchange: HttpExchange) -> None:
        request = json.loads(exchange.request.body)
        terminal = "MONITOR_TERMINAL" in request.get("permissions", [])
        self.users[request["name"]] = (request["password"], terminal)
        await exchange.respond(200, [("Content-Type", "application/json")], b"{}")

    async def login_page(self, exchange: HttpExchange) -> None:
        await exchange.respond(200, [("Content-Type", "text/html")], b"<html></html>")

    async def logout(self, exchange: HttpExchange) -> None:
        token = json.loads(exchange.request.body or b"{}").get("session")
        self.tokens.pop(token, None)
        for session in list(self.sessions):
            if session.token == token:
                session.token = None
                await session.connection.send([json.dumps({"reauthRequired": {"reason": "logout"}})])
        await exchange.respond(200, [("Content-Type", "application/json")], b"{}")

    async def connection_state(self, exchange: HttpExchange) -> None:
        body = {"current": {"state": "Operational"}, "options": {"ports": ["VIRTUAL"]}}
        await exchange.respond(200, [("Content-Type", "application/json")], json.dumps(body).encode())

    async def command(self, exchange: HttpExchange) -> None:
        for command in json.loads(exchange.request.body).get("commands", []):
            self.log.append(f"Send: {command}")
        await exchange.respond(204)


@asynccontextmanager
async def serve_fake(faults: Faults) -> AsyncIterator[str]:
    """Serve a fake with ``faults`` on 127.0.0.1; yields its URL. Stopped when the block ends."""
    fake = FakePushServer(faults)
    router = Router()
    router.add("/api/login", {"POST": fake.login})
    router.add("/api/logout", {"POST": fake.logout})
    router.add("/api/access/users", {"POST": fake.add_user})
    router.add("/login", {"GET": fake.login_page})
    router.add("/api/connection", {"GET": fake.connection_state})
    router.add("/api/printer/command", {"POST": fake.command})
    async with trio.open_nursery() as nursery:
        server: HttpServer = await nursery.start(
            partial(
                serve_http,
                host="127.0.0.1",
                port=0,
                sockjs_app=fake.app,
                router=router,
                heartbeat_interval=FAKE_HEARTBEAT,
            )
        )
        try:
            yield server.url
        finally:
            await server.shutdown(timeout=1)
