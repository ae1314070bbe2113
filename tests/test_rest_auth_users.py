"""User management over ``/api/access/users`` with httpx against a real server: status codes, the
config file kept in step, and what the changed user's push sockets hear (``reauthRequired``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.auth import AccessConfig, load_config, save_config

from .test_push_auth import RAW, USERS, Client
from .websocket_client import connect_websocket

HANG_GUARD = 30  # seconds; only to turn a hang into a failure
ADMIN = {"X-Api-Key": USERS["admin"].api_key or ""}
NEW_PASSWORD = "new user's password"


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "octotrio.toml"
    save_config(path, AccessConfig(users=tuple(USERS.values())))
    return path


@pytest.fixture
async def server(nursery: trio.Nursery, config_path: Path) -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, access=load_config(config_path), access_config_path=config_path)
    running: RunningServer = await nursery.start(run, config)
    yield running
    running.request_shutdown()


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


async def password_login(server: RunningServer, name: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        csrf = (await http.get("/login")).cookies[f"csrf_token_P{server.http.port}"]
        return await http.post(
            "/api/login", json={"user": name, "pass": password}, headers={"X-CSRF-Token": csrf}
        )


def names(response: httpx.Response) -> list[str]:
    return [user["name"] for user in response.json()["users"]]


async def test_an_admin_creates_a_restricted_user_who_can_log_in(
    server: RunningServer, http: httpx.AsyncClient, config_path: Path
) -> None:
    body = {
        "name": "carol",
        "password": NEW_PASSWORD,
        "active": True,
        "groups": [],
        "permissions": ["STATUS"],
    }
    created = await http.post("/api/access/users", json=body, headers=ADMIN)
    assert created.status_code == 200, created.text
    assert "carol" in names(created)
    login = await password_login(server, "carol", NEW_PASSWORD)
    assert login.status_code == 200, login.text
    assert login.json()["permissions"] == ["STATUS"]
    saved = {user.name: user for user in load_config(config_path).users}
    assert saved["carol"].permissions == ("STATUS",)
    again = await http.post("/api/access/users", json=body, headers=ADMIN)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"password": "p", "active": True}, 400),
        ({"name": "dave", "active": True}, 400),
        ({"name": "dave", "password": "p"}, 400),
        ({"name": "bad:name", "password": "p", "active": True}, 400),
        ({"name": "dave", "password": "p", "active": True, "groups": ["wizards"]}, 400),
        ({"name": "dave", "password": "p", "active": True, "permissions": ["FLY"]}, 400),
        ({"name": "dave", "password": "p", "active": True, "permissions": "STATUS"}, 400),
    ],
)
async def test_invalid_new_users_are_400(
    http: httpx.AsyncClient, config_path: Path, body: dict[str, Any], status: int
) -> None:
    response = await http.post("/api/access/users", json=body, headers=ADMIN)
    assert response.status_code == status
    assert "error" in response.json()
    assert "dave" not in {user.name for user in load_config(config_path).users}


async def test_only_admins_manage_users(http: httpx.AsyncClient) -> None:
    viewer = {"X-Api-Key": USERS["viewer"].api_key or ""}
    assert (await http.get("/api/access/users", headers=viewer)).status_code == 403
    assert (await http.get("/api/access/users")).status_code == 403
    body = {"name": "eve", "password": "p", "active": True}
    assert (await http.post("/api/access/users", json=body, headers=viewer)).status_code == 403
    assert (await http.delete("/api/access/users/viewer", headers=viewer)).status_code == 403
    assert (await http.get("/api/access/users/viewer", headers=ADMIN)).json()["name"] == "viewer"
    assert (await http.get("/api/access/users/nope", headers=ADMIN)).status_code == 404
    assert (await http.put("/api/access/users/nope", json={}, headers=ADMIN)).status_code == 404
    assert (await http.delete("/api/access/users/nope", headers=ADMIN)).status_code == 404


@pytest.mark.parametrize("path", ["/api/files", "/api/files/local", "/api/files/sdcard"])
async def test_file_listings_need_files_list_not_only_status(http: httpx.AsyncClient, path: str) -> None:
    viewer = {"X-Api-Key": USERS["viewer"].api_key or ""}  # STATUS only
    terminal = {"X-Api-Key": USERS["terminal"].api_key or ""}  # the readonly group: FILES_LIST
    refused = await http.get(path, headers=viewer)
    assert refused.status_code == 403
    assert "error" in refused.json()
    assert (await http.get(path, headers=terminal)).status_code == 200


async def test_modified_user_sockets_hear_modified_and_reauth_with_new_permissions(
    server: RunningServer, http: httpx.AsyncClient, config_path: Path
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, framed=False)
            login = await http.post(
                "/api/login", json={"passive": True}, headers={"X-Api-Key": USERS["viewer"].api_key or ""}
            )
            session = login.json()["session"]
            await client.send({"auth": f"viewer:{session}"})
            history = await client.next_of_type("history")
            assert "logs" not in history
            changed = await http.put(
                "/api/access/users/viewer",
                json={"permissions": ["STATUS", "MONITOR_TERMINAL"]},
                headers=ADMIN,
            )
            assert changed.status_code == 200, changed.text
            assert await client.next_of_type("reauthRequired") == {"reason": "modified"}
            await client.send({"auth": f"viewer:{session}"})  # the session holds the new permissions
            assert "logs" in await client.next_of_type("history")
    saved = {user.name: user for user in load_config(config_path).users}
    assert saved["viewer"].permissions == ("MONITOR_TERMINAL", "STATUS")


async def test_removed_user_sockets_hear_removed_and_their_sessions_end(
    server: RunningServer, http: httpx.AsyncClient, config_path: Path
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, framed=False)
            login = await password_login(server, "terminal", "correct horse")
            session = login.json()["session"]
            await client.send({"auth": f"terminal:{session}"})
            await client.next_of_type("history")
            removed = await http.delete("/api/access/users/terminal", headers=ADMIN)
            assert removed.status_code == 200
            assert "terminal" not in names(removed)
            assert await client.next_of_type("reauthRequired") == {"reason": "removed"}
            await client.send({"auth": f"terminal:{session}"})
            assert await client.next_of_type("reauthRequired") == {"reason": "stale"}
    key = {"X-Api-Key": USERS["terminal"].api_key or ""}
    assert (await http.get("/api/version", headers=key)).status_code == 403
    assert "terminal" not in {user.name for user in load_config(config_path).users}


async def test_deactivated_user_sockets_hear_modified_and_their_sessions_end(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    key = {"X-Api-Key": USERS["viewer"].api_key or ""}
    with trio.fail_after(HANG_GUARD):
        async with connect_websocket(server.http.port, RAW) as ws:
            client = Client(ws, framed=False)
            session = (await http.post("/api/login", json={"passive": True}, headers=key)).json()["session"]
            await client.send({"auth": f"viewer:{session}"})
            await client.next_of_type("history")
            changed = await http.put("/api/access/users/viewer", json={"active": False}, headers=ADMIN)
            assert changed.status_code == 200
            assert await client.next_of_type("reauthRequired") == {"reason": "modified"}
            await client.send({"auth": f"viewer:{session}"})
            assert await client.next_of_type("reauthRequired") == {"reason": "stale"}
    assert (await http.get("/api/version", headers=key)).status_code == 403
    bad = await http.put("/api/access/users/viewer", json={"groups": "admins"}, headers=ADMIN)
    assert bad.status_code == 400
