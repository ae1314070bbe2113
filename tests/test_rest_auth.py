"""REST login, logout, current user, CSRF and failed-login limits over httpx against a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.auth import AccessConfig, UserRecord, hash_password

PASSWORD = "s3cret"
ADMIN_KEY = "K" * 32
VIEWER_KEY = "W" * 32
USERS = (
    UserRecord("admin", hash_password(PASSWORD), groups=("admins", "users"), api_key=ADMIN_KEY),
    UserRecord("viewer", hash_password(PASSWORD), groups=(), permissions=("STATUS",), api_key=VIEWER_KEY),
)


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    running: RunningServer = await nursery.start(run, ServerConfig(port=0, access=AccessConfig(users=USERS)))
    yield running
    running.request_shutdown()


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.http.port}") as client:
        yield client


async def csrf_headers(http: httpx.AsyncClient, port: int) -> dict[str, str]:
    response = await http.get("/login")
    return {"X-CSRF-Token": response.cookies[f"csrf_token_P{port}"]}


async def test_passive_login_with_api_key_gives_a_session(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/login", json={"passive": True}, headers={"X-Api-Key": ADMIN_KEY})
    assert response.status_code == 200
    record = response.json()
    assert record["name"] == "admin"
    assert record["_login_mechanism"] == "apikey"
    assert record["admin"] is True
    assert len(record["session"]) == 64
    assert "ADMIN" in record["permissions"]


async def test_passive_login_without_credentials_is_401(
    http: httpx.AsyncClient, server: RunningServer
) -> None:
    response = await http.post(
        "/api/login", json={"passive": True}, headers=await csrf_headers(http, server.http.port)
    )
    assert response.status_code == 401


async def test_password_login_needs_csrf(http: httpx.AsyncClient, server: RunningServer) -> None:
    missing = await http.post("/api/login", json={"user": "admin", "pass": PASSWORD})
    assert missing.status_code == 400
    assert missing.json() == {"error": "CSRF validation failed"}
    wrong = await http.post(
        "/api/login", json={"user": "admin", "pass": PASSWORD}, headers={"X-CSRF-Token": "not-the-cookie"}
    )
    assert wrong.status_code == 400
    login = await http.post(
        "/api/login",
        json={"user": "admin", "pass": PASSWORD},
        headers=await csrf_headers(http, server.http.port),
    )
    assert login.status_code == 200
    assert login.json()["_login_mechanism"] == "password"
    assert http.cookies.get(f"session_P{server.http.port}") == login.json()["session"]
    current = await http.get("/api/currentuser")
    assert current.json()["name"] == "admin"


async def test_invalid_api_key_fails_csrf_on_post(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/login", json={"passive": True}, headers={"X-Api-Key": "bogus"})
    assert response.status_code == 400
    assert response.json() == {"error": "CSRF validation failed"}


async def test_wrong_password_is_403_then_rate_limited(
    http: httpx.AsyncClient, server: RunningServer
) -> None:
    headers = await csrf_headers(http, server.http.port)
    statuses = [
        (await http.post("/api/login", json={"user": "admin", "pass": "wrong"}, headers=headers)).status_code
        for _ in range(4)
    ]
    assert statuses == [403, 403, 403, 429]
    right = await http.post("/api/login", json={"user": "admin", "pass": PASSWORD}, headers=headers)
    assert right.status_code == 429  # the address is limited, whatever it sends


async def test_login_body_errors(http: httpx.AsyncClient, server: RunningServer) -> None:
    headers = await csrf_headers(http, server.http.port)
    assert (await http.post("/api/login", json={}, headers=headers)).status_code == 400
    assert (await http.post("/api/login", content=b"[1]", headers=headers)).status_code == 400
    assert (await http.post("/api/login", json={"user": 1, "pass": []}, headers=headers)).status_code == 400
    assert (await http.get("/api/login")).status_code == 405


async def test_current_user_anonymous_and_by_key(http: httpx.AsyncClient) -> None:
    anonymous = await http.get("/api/currentuser")
    assert anonymous.json() == {"name": None, "permissions": [], "groups": ["guests"]}
    viewer = await http.get("/api/currentuser", headers={"X-Api-Key": VIEWER_KEY})
    assert viewer.json() == {"name": "viewer", "permissions": ["STATUS"], "groups": []}


async def test_version_and_server_need_status(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/version")).status_code == 403
    assert (await http.get("/api/version", headers={"X-Api-Key": VIEWER_KEY})).status_code == 200
    assert (await http.get("/api/version", params={"apikey": "bogus"})).status_code == 403


async def test_logout_ends_the_session(http: httpx.AsyncClient, server: RunningServer) -> None:
    headers = await csrf_headers(http, server.http.port)
    login = await http.post("/api/login", json={"user": "viewer", "pass": PASSWORD}, headers=headers)
    session = login.json()["session"]
    assert (await http.post("/api/logout")).status_code == 400  # no CSRF token
    logout = await http.post("/api/logout", headers=headers)
    assert logout.status_code == 200
    assert logout.json()["name"] is None
    assert (await http.get("/api/currentuser")).json()["name"] is None
    assert server.access.session_principal(session, trio.current_time()) is None
