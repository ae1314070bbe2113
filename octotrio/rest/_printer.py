"""``/api/printer``: state and temperatures, arbitrary commands, tool and bed (octoprint-push.md §12.4)."""

from __future__ import annotations

import re
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from octotrio.http import Router
from octotrio.state import JSONObject, OffsetsChanged

from ._commands import command_body, is_true, number
from ._common import ApiError, Authenticator, Call, endpoint
from ._services import RestServices, printer_errors

MAX_COMMANDS = 256
"""Commands one ``/api/printer/command`` call may carry: a long start script, not a whole print."""

MAX_COMMAND_LENGTH = 256
"""Characters in one command: Marlin's own line buffer holds 96, so anything longer is an error."""

OFFSET_LIMIT = 50.0
"""Temperature offsets allowed, in °C either way, as OctoPrint limits them."""

FLOWRATE_RANGE = (75.0, 125.0)
"""Flow rate factors OctoPrint accepts, in percent."""

EXTRUDE_FEEDRATE = 300
"""mm/min for ``extrude``: OctoPrint's default profile's E axis speed."""

NOT_OPERATIONAL = "Printer is not operational"
_TOOL = re.compile(r"tool(\d+)")


def _require_operational(services: RestServices) -> None:
    if not services.model.operational:
        raise ApiError(409, NOT_OPERATIONAL)


def _require_idle(services: RestServices, what: str) -> None:
    if services.model.busy:
        raise ApiError(409, f"Printer is currently printing, cannot {what}")


def _temperatures(services: RestServices, history: bool, limit: int | None) -> JSONObject:
    model = services.model

    def without_absent(point: JSONObject) -> JSONObject:
        # REST strips heaters the printer does not have (a chamber reported as null, §8.5).
        return {key: value for key, value in point.items() if key == "time" or value["actual"] is not None}

    latest = without_absent(model.temps[-1]) if model.temps else {}
    result: JSONObject = {
        name: {**reading, "offset": model.offsets.get(name, 0)}
        for name, reading in latest.items()
        if name != "time"
    }
    if history:
        points = list(model.temps)
        if limit is not None:
            points = points[max(0, len(points) - limit) :] if limit else []
        result["history"] = [without_absent(point) for point in points]
    return result


async def get_printer(services: RestServices, call: Call) -> object:
    _require_operational(services)
    query = parse_qs(call.request.query)
    exclude = {item.strip() for value in query.get("exclude", []) for item in value.split(",")}
    history = is_true(query.get("history", ["false"])[0])
    limit: int | None = None
    if "limit" in query:
        try:
            limit = int(query["limit"][0])
        except ValueError:
            raise ApiError(400, "limit must be an integer") from None
        if limit < 0:
            raise ApiError(400, "limit must not be negative")
    result: JSONObject = {}
    if "sd" not in exclude:
        result["sd"] = {"ready": services.model.sd_ready}
    if "state" not in exclude:
        result["state"] = services.model.state_payload()
    if "temperature" not in exclude:
        result["temperature"] = _temperatures(services, history, limit)
    return result


def _command_list(body: dict[str, Any]) -> list[str]:
    if "command" in body:
        commands = [body["command"]]
    elif "commands" in body and isinstance(body["commands"], list):
        commands = body["commands"]
    elif "script" in body:
        raise ApiError(400, "GCODE scripts are not supported")
    else:
        raise ApiError(400, "Expected command or commands")
    if len(commands) > MAX_COMMANDS:
        raise ApiError(400, f"At most {MAX_COMMANDS} commands per request")
    for command in commands:
        if not isinstance(command, str) or len(command) > MAX_COMMAND_LENGTH:
            raise ApiError(400, f"Commands must be strings of at most {MAX_COMMAND_LENGTH} characters")
        if "\n" in command or "\r" in command:
            raise ApiError(400, "A command must be a single line")
    return [command.strip() for command in commands if command.strip()]


async def post_command(services: RestServices, call: Call) -> object:
    content_type = call.request.header("content-type") or ""
    if "application/json" not in content_type.lower():
        raise ApiError(400, "Expected content-type JSON")
    commands = _command_list(call.json_body())
    _require_operational(services)
    with printer_errors():
        services.printer.send_commands(commands)
    return None


def _set_offsets(services: RestServices, offsets: dict[str, object]) -> None:
    checked = {name: number(value, "offset") for name, value in offsets.items()}
    for name, value in checked.items():
        if not -OFFSET_LIMIT <= value <= OFFSET_LIMIT:
            raise ApiError(400, f"Offset for {name} must be between -{OFFSET_LIMIT:g} and {OFFSET_LIMIT:g}")
    services.feed.submit(OffsetsChanged(checked))


def _tools(mapping: object, what: str) -> dict[str, object]:
    if not isinstance(mapping, dict) or not all(_TOOL.fullmatch(str(key)) for key in mapping):
        raise ApiError(400, f"Invalid {what}: keys must be tool0, tool1, ...")
    return mapping


async def post_tool(services: RestServices, call: Call) -> object:
    command, body = command_body(
        call,
        {
            "target": ("targets",),
            "offset": ("offsets",),
            "select": ("tool",),
            "extrude": ("amount",),
            "flowrate": ("factor",),
        },
    )
    _require_operational(services)
    with printer_errors():
        _tool_command(services, command, body)
    return None


def _tool_command(services: RestServices, command: str, body: dict[str, Any]) -> None:
    printer = services.printer
    match command:
        case "target":
            targets = {
                tool: number(value, f"target for {tool}")
                for tool, value in _tools(body["targets"], "targets").items()
            }
            for tool, target in targets.items():
                printer.set_temperature(tool, target)
        case "offset":
            _set_offsets(services, _tools(body["offsets"], "offsets"))
        case "select":
            match = _TOOL.fullmatch(str(body["tool"]))
            if match is None:
                raise ApiError(400, f"Invalid tool: {body['tool']!r}")
            _require_idle(services, "change the tool")
            printer.send_commands([f"T{match.group(1)}"])
        case "extrude":
            amount = number(body["amount"], "extrusion amount")
            _require_idle(services, "extrude")
            printer.send_commands(["G91", f"G1 E{amount:g} F{EXTRUDE_FEEDRATE}", "G90"])
        case "flowrate":
            factor = number(body["factor"], "flow rate factor")
            if not FLOWRATE_RANGE[0] <= factor <= FLOWRATE_RANGE[1]:
                raise ApiError(400, "factor must be between 75 and 125")
            printer.send_commands([f"M221 S{factor:g}"])


async def post_bed(services: RestServices, call: Call) -> object:
    command, body = command_body(call, {"target": ("target",), "offset": ("offset",)})
    _require_operational(services)
    if command == "target":
        with printer_errors():
            services.printer.set_temperature("bed", number(body["target"], "target for bed"))
    else:
        _set_offsets(services, {"bed": body["offset"]})
    return None


def add_routes(router: Router, authenticator: Authenticator, services: RestServices) -> None:
    control = ("CONTROL",)
    router.add(r"/api/printer", {"GET": endpoint(authenticator, partial(get_printer, services))})
    for path, function in (
        (r"/api/printer/command", post_command),
        (r"/api/printer/tool", post_tool),
        (r"/api/printer/bed", post_bed),
    ):
        router.add(path, {"POST": endpoint(authenticator, partial(function, services), permissions=control)})
