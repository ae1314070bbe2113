"""The status page's routes over loopback: the page, its files, and the sockjs-client bundle
served from node_modules (503 with advice when it is not installed)."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from octotrio.http import HttpServer, Router, serve_http
from octotrio.sockjs import SockJSConnection
from octotrio.web import SOCKJS_CLIENT_URL, add_routes, default_node_modules


async def idle_app(connection: SockJSConnection) -> None:
    await connection.receive()


async def start_server(nursery: trio.Nursery, node_modules: Path) -> HttpServer:
    router = Router()
    add_routes(router, node_modules=node_modules)
    server: HttpServer = await nursery.start(
        partial(serve_http, host="127.0.0.1", port=0, sockjs_app=idle_app, router=router)
    )
    return server


async def test_page_loads_the_bundle_and_its_own_files_from_the_server(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, default_node_modules())
    async with httpx.AsyncClient(base_url=server.url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=UTF-8"
        # Everything the page loads comes from octotrio itself: no CDN, no outside network.
        sources = re.findall(r'(?:src|href)="([^"]*)"', page.text)
        assert SOCKJS_CLIENT_URL in sources
        for source in sources:
            if source.startswith("data:"):
                continue
            assert source.startswith("/"), source
            loaded = await client.get(source)
            assert loaded.status_code == 200, source


async def test_bundle_is_the_npm_package_file(nursery: trio.Nursery) -> None:
    bundle = default_node_modules() / "sockjs-client" / "dist" / "sockjs.min.js"
    if not bundle.exists():
        pytest.fail(f"{bundle} is missing: run scripts/install-deps.sh")
    server = await start_server(nursery, default_node_modules())
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(SOCKJS_CLIENT_URL)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=UTF-8"
    assert response.content == bundle.read_bytes()


async def test_missing_bundle_gets_503_saying_what_to_run(nursery: trio.Nursery, tmp_path: Path) -> None:
    server = await start_server(nursery, tmp_path / "node_modules")
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(SOCKJS_CLIENT_URL)
        page = await client.get("/")
    assert response.status_code == 503
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert "npm ci" in response.text
    assert page.status_code == 200  # the page itself still loads, and says the bundle is missing
