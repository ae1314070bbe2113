"""REST basics over real HTTP: API key in each accepted place, 403 without it, JSON errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run

API_KEY = "test-key-0123456789"


@pytest.fixture
async def server(nursery: trio.Nursery) -> AsyncIterator[RunningServer]:
    running: RunningServer = await nursery.start(run, ServerConfig(port=0, api_key=API_KEY))
    yield running
    running.request_shutdown()


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"X-Api-Key": API_KEY}, {}),
        ({"Authorization": f"Bearer {API_KEY}"}, {}),
        ({}, {"apikey": API_KEY}),
    ],
)
async def test_version_with_the_api_key_in_each_accepted_place(
    server: RunningServer, headers: dict[str, str], params: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/api/version", headers=headers, params=params)
    assert response.status_code == 200
    assert response.json()["api"] == "0.1"
    assert response.json()["server"] == "1.11.8"


@pytest.mark.parametrize("headers", [{}, {"X-Api-Key": "wrong"}, {"Authorization": "Basic abc"}])
async def test_calls_without_a_valid_key_get_403_with_a_json_error(
    server: RunningServer, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get("/api/server", headers=headers)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert "error" in response.json()
