"""The target server's REST API: login, and driving the printer into the states the checks need
(octoprint-push.md §12). Every call returns what happened; nothing raises for an HTTP status, so the
runner can say plainly which step the target did not support."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

TEST_FILE_NAME = "conformance-suite.gcode"


def sample_gcode(layers: int = 40, moves_per_layer: int = 10) -> bytes:
    """A small G-code file without heating that a virtual printer takes some seconds to print: one
    ZChange per layer and short dwells, so that pause, resume and cancel land mid-print."""
    lines = ["; octotrio conformance suite", "G21", "G90", "M82", "G28", "G92 E0"]
    extruded = 0.0
    for layer in range(1, layers + 1):
        lines.append(f"G1 Z{layer * 0.2:.1f} F300")
        for move in range(moves_per_layer):
            extruded += 0.5
            x, y = 10 + (move % 2) * 40, 10 + layer
            lines.append(f"G1 X{x} Y{y} E{extruded:.2f} F1200")
            lines.append("G4 P40")
    lines.append("M84")
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class Outcome:
    """One REST call: its status (0 when it could not be made) and a short description."""

    status: int
    description: str
    body: Any = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Login:
    name: str
    session: str

    @property
    def auth(self) -> str:
        """The value of a socket's ``{"auth": ...}`` (PUSH-AUTH-1)."""
        return f"{self.name}:{self.session}"


class RestTarget:
    """REST calls against one server, with the API key (or a password login's cookies)."""

    def __init__(self, client: httpx.AsyncClient, url: str, api_key: str | None) -> None:
        self.client = client
        self.url = url.rstrip("/")
        self.api_key = api_key

    def _headers(self, method: str) -> dict[str, str]:
        if self.api_key:
            return {"X-Api-Key": self.api_key}
        # Without an API key OctoPrint wants the CSRF cookie echoed in a header on every request that
        # is not GET/HEAD/OPTIONS (octoprint-push.md §12.1); the cookie comes from GET /login.
        csrf = next((v for k, v in self.client.cookies.items() if k.startswith("csrf_token")), None)
        return {"X-CSRF-Token": csrf} if csrf and method not in ("GET", "HEAD", "OPTIONS") else {}

    async def call(self, method: str, path: str, **kwargs: Any) -> Outcome:
        headers = {**self._headers(method), **kwargs.pop("headers", {})}
        try:
            response = await self.client.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        except httpx.HTTPError as error:
            return Outcome(0, f"{method} {path}: {error!r}")
        try:
            body = response.json()
        except ValueError:
            body = response.text[:300]
        return Outcome(response.status_code, f"{method} {path} → {response.status_code}", body)

    async def passive_login(self) -> tuple[Outcome, Login | None]:
        outcome = await self.call("POST", "/api/login", json={"passive": True})
        return outcome, _login_from(outcome)

    async def password_login(self, user: str, password: str) -> tuple[Outcome, Login | None]:
        """Log in with a password; the session cookie it sets authenticates this client's later calls.
        Use a client of its own when the run also uses an API key: OctoPrint checks CSRF on any request
        that carries a session cookie."""
        await self.call("GET", "/login")  # the CSRF cookie (octoprint-push.md §12.1)
        outcome = await self.call(
            "POST", "/api/login", json={"user": user, "pass": password, "remember": False}
        )
        return outcome, _login_from(outcome)

    async def logout(self, login: Login) -> Outcome:
        return await self.call("POST", "/api/logout", json={"session": login.session})

    async def connection_state(self) -> Outcome:
        return await self.call("GET", "/api/connection")

    async def connect_printer(self) -> Outcome:
        state = await self.connection_state()
        if not state.ok:
            return state
        current = state.body.get("current", {}) if isinstance(state.body, dict) else {}
        if current.get("state") not in (None, "Closed", "Offline", "Offline after error"):
            return Outcome(204, f"already connected ({current.get('state')})")
        options = state.body.get("options", {}) if isinstance(state.body, dict) else {}
        ports = options.get("ports") or []
        port = "VIRTUAL" if "VIRTUAL" in ports else (ports[0] if ports else "AUTO")
        body = {"command": "connect", "port": port, "baudrate": 115200}
        return await self.call("POST", "/api/connection", json=body)

    async def send_commands(self, commands: list[str]) -> Outcome:
        return await self.call("POST", "/api/printer/command", json={"commands": commands})

    async def upload_and_print(self) -> Outcome:
        files = {"file": (TEST_FILE_NAME, sample_gcode(), "application/octet-stream")}
        outcome = await self.call(
            "POST", "/api/files/local", files=files, data={"select": "true", "print": "true"}
        )
        return outcome

    async def job(self, command: str, action: str | None = None) -> Outcome:
        body = {"command": command} | ({"action": action} if action else {})
        return await self.call("POST", "/api/job", json=body)

    async def create_user(self, permissions: list[str]) -> tuple[Outcome, tuple[str, str]]:
        name = f"conformance{secrets.token_hex(3)}"
        password = secrets.token_hex(8)
        body = {"name": name, "password": password, "active": True, "groups": [], "permissions": permissions}
        return await self.call("POST", "/api/access/users", json=body), (name, password)


def _login_from(outcome: Outcome) -> Login | None:
    body = outcome.body
    if outcome.ok and isinstance(body, dict) and isinstance(body.get("name"), str):
        session = body.get("session")
        if isinstance(session, str) and session:
            return Login(body["name"], session)
    return None
