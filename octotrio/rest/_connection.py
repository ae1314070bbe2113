"""``GET/POST /api/connection`` (octoprint-push.md §12.3)."""

from __future__ import annotations

from functools import partial

from octotrio.http import Router
from octotrio.printer import CommState

from ._commands import command_body
from ._common import ApiError, Authenticator, Call, endpoint
from ._services import BAUDRATES, RestServices, printer_errors

DEFAULT_PROFILE = {"id": "_default", "name": "Default"}


async def get_connection(services: RestServices, call: Call) -> object:
    model = services.model
    state = "Closed" if model.state is CommState.OFFLINE else model.state_text
    return {
        "current": {
            "state": state,
            "port": model.port,
            "baudrate": model.baudrate,
            "printerProfile": "_default",
        },
        "options": {
            "ports": services.ports(),
            "baudrates": list(BAUDRATES),
            "printerProfiles": [DEFAULT_PROFILE],
            "portPreference": None,
            "baudratePreference": None,
            "printerProfilePreference": "_default",
        },
    }


async def post_connection(services: RestServices, call: Call) -> object:
    command, body = command_body(call, {"connect": (), "disconnect": ()})
    if command == "disconnect":
        await services.printer.disconnect()
        return None
    ports = services.ports()
    port = body.get("port")
    if port is not None and port != "AUTO" and port not in ports:
        raise ApiError(400, "port is invalid")
    baudrate = body.get("baudrate")
    if baudrate is not None and (isinstance(baudrate, bool) or baudrate not in (0, *BAUDRATES)):
        raise ApiError(400, "baudrate is invalid")
    if body.get("printerProfile", "_default") != "_default":
        raise ApiError(400, "printerProfile is invalid")
    # AUTO and 0 leave the choice to the controller: its default port and baud rate.
    with printer_errors():
        await services.printer.connect(None if port == "AUTO" else port, baudrate or None)
    return None


def add_routes(router: Router, authenticator: Authenticator, services: RestServices) -> None:
    router.add(
        r"/api/connection",
        {
            "GET": endpoint(authenticator, partial(get_connection, services)),
            "POST": endpoint(authenticator, partial(post_connection, services), permissions=("CONNECTION",)),
        },
    )
