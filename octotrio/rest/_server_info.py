"""``GET /api/version`` and ``GET /api/server`` (octoprint-push.md §12.3)."""

from __future__ import annotations

from octotrio import __version__
from octotrio.http import Router
from octotrio.push import API_VERSION

from ._common import Authenticator, Call, endpoint


async def get_version(call: Call) -> object:
    return {"api": "0.1", "server": API_VERSION, "text": f"OctoPrint {API_VERSION} (octotrio {__version__})"}


async def get_server(call: Call) -> object:
    return {"version": API_VERSION, "safemode": None}


def add_routes(router: Router, authenticator: Authenticator) -> None:
    router.add(r"/api/version", {"GET": endpoint(authenticator, get_version)})
    router.add(r"/api/server", {"GET": endpoint(authenticator, get_server)})
