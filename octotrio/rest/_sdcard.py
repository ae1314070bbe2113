"""The SD card: ``/api/files/sdcard`` and ``/api/printer/sd`` (OctoPrint 1.11.8's paths, bodies and errors).

The firmware's card is listed, selected, printed and deleted through the printer link (``M20``,
``M23``, ``M24``, ``M30``, ...); what the firmware reported is in :class:`PrinterModel`
(``sd_ready``, ``sd_files``). Uploading to the card (``M28``/``M29`` streaming) is not supported:
``POST /api/files/sdcard`` answers 400 (409 without a card, as OctoPrint does), see
``spec/deviations.md``.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import quote, unquote

from octotrio.files import is_gcode_name
from octotrio.http import Router
from octotrio.printer import SdFile
from octotrio.state import FileDeselected, JSONObject

from ._commands import command_body, is_true
from ._common import ApiError, Authenticator, Call, endpoint
from ._job import check_selectable
from ._services import RestServices, printer_errors

SD_NOT_READY = "Can not upload to SD card, not yet initialized"
NOT_OPERATIONAL_OR_BUSY = "Printer is not operational or currently busy"


def _entry(call: Call, file: SdFile) -> JSONObject:
    """One listing entry in OctoPrint's shape for the ``sdcard`` origin (no download, no date)."""
    host = call.request.header("host") or "127.0.0.1"
    return {
        "type": "machinecode",
        "typePath": ["machinecode", "gcode"],
        "name": file.name,
        "display": file.display,
        "path": file.name,
        "origin": "sdcard",
        "refs": {"resource": f"http://{host}/api/files/sdcard/{quote(file.name)}"},
        "size": file.size,
    }


def sd_entries(services: RestServices, call: Call) -> list[JSONObject]:
    """The G-code files on the SD card as listing entries; none while no card is ready."""
    model = services.model
    if not model.sd_ready:
        return []
    return [_entry(call, file) for file in model.sd_files if is_gcode_name(file.name)]


def _existing(services: RestServices, call: Call) -> SdFile:
    name = unquote(call.path_params["path"])
    model = services.model
    found = next((f for f in model.sd_files if f.name == name), None) if model.sd_ready else None
    if found is None or not is_gcode_name(found.name):
        raise ApiError(404, f"File not found on 'sdcard': {name}")
    return found


async def get_sd_files(services: RestServices, call: Call) -> object:
    # OctoPrint reports free and total space only for the local storage.
    return {"files": sd_entries(services, call)}


async def get_sd_file(services: RestServices, call: Call) -> object:
    return _entry(call, _existing(services, call))


async def post_sd_upload(services: RestServices, call: Call) -> object:
    if not services.model.sd_ready:
        raise ApiError(409, SD_NOT_READY)
    raise ApiError(400, "Uploading to the SD card is not supported; upload to 'local' instead")


async def post_sd_file_command(services: RestServices, call: Call) -> object:
    _command, body = command_body(call, {"select": ()})
    file = _existing(services, call)
    print_after = is_true(body.get("print", False))
    check_selectable(services, print_after=print_after)
    with printer_errors():
        services.printer.select_sd_file(file.name, print_after=print_after, user=call.principal.name)
    return None


async def delete_sd_file(services: RestServices, call: Call) -> object:
    file = _existing(services, call)
    model = services.model
    selected = model.selected
    if selected is not None and selected.file.origin == "sdcard" and selected.file.path == file.name:
        if model.busy:
            raise ApiError(409, f"Trying to delete a file that is currently in use: {file.name}")
        services.feed.submit(FileDeselected())
    with printer_errors():
        # The link refuses while any print runs: the firmware reads the card for it.
        services.printer.delete_sd_file(file.name)
    return None


async def get_printer_sd(services: RestServices, call: Call) -> object:
    return {"ready": services.model.sd_ready}


async def post_printer_sd(services: RestServices, call: Call) -> object:
    model = services.model
    # OctoPrint checks the printer before the body.
    if not model.operational or model.busy:
        raise ApiError(409, NOT_OPERATIONAL_OR_BUSY)
    command, _body = command_body(call, {"init": (), "refresh": (), "release": ()})
    printer = services.printer
    with printer_errors():
        match command:
            case "init":
                printer.init_sd()
            case "refresh":
                printer.refresh_sd()
            case "release":
                await printer.release_sd()
    return None


def add_routes(router: Router, authenticator: Authenticator, services: RestServices) -> None:
    router.add(
        r"/api/files/sdcard",
        {
            "GET": endpoint(authenticator, partial(get_sd_files, services), permissions=("FILES_LIST",)),
            "POST": endpoint(authenticator, partial(post_sd_upload, services), permissions=("FILES_UPLOAD",)),
        },
    )
    router.add(
        r"/api/files/sdcard/(?P<path>.+)",
        {
            "GET": endpoint(authenticator, partial(get_sd_file, services), permissions=("FILES_LIST",)),
            "POST": endpoint(
                authenticator, partial(post_sd_file_command, services), permissions=("FILES_SELECT",)
            ),
            "DELETE": endpoint(
                authenticator, partial(delete_sd_file, services), permissions=("FILES_DELETE",)
            ),
        },
    )
    router.add(
        r"/api/printer/sd",
        {
            "GET": endpoint(authenticator, partial(get_printer_sd, services)),
            "POST": endpoint(authenticator, partial(post_printer_sd, services), permissions=("CONTROL",)),
        },
    )
