"""``GET/POST /api/job``: the current job, start, restart, pause, resume, cancel (octoprint-push.md §12.5)."""

from __future__ import annotations

from functools import partial

from octotrio.http import Router
from octotrio.printer import CommState

from ._commands import command_body
from ._common import ApiError, Authenticator, Call, endpoint
from ._printer import NOT_OPERATIONAL
from ._services import RestServices, printer_errors

_ACTIVE = frozenset(
    {
        CommState.STARTING,
        CommState.PRINTING,
        CommState.PAUSING,
        CommState.PAUSED,
        CommState.RESUMING,
        CommState.FINISHING,
    }
)
"""States with an active print job: one that can be paused or cancelled (CANCELLING is ending)."""


async def get_job(services: RestServices, call: Call) -> object:
    model = services.model
    result = {"job": model.job, "progress": model.progress, "state": model.state_text}
    if model.error:
        result["error"] = model.error
    return result


def check_selectable(services: RestServices, *, print_after: bool) -> None:
    """409 unless a file may be selected now (and printed at once when ``print_after``)."""
    model = services.model
    if model.busy:
        raise ApiError(409, "Printer is already printing, cannot select a new file")
    if print_after and model.state is not CommState.OPERATIONAL:
        raise ApiError(409, "Printer is not operational, cannot directly start printing")


def start_selected(services: RestServices) -> None:
    """Print the selected file from its first line (409 when there is none)."""
    selected = services.model.selected
    if selected is None:
        raise ApiError(409, "No file selected, cannot start a print job")
    with printer_errors():
        if selected.file.origin == "sdcard":
            services.printer.start_sd_print()
        else:
            services.printer.start_print(selected.file, services.files.local_path(selected.file.path))


async def post_job(services: RestServices, call: Call) -> object:
    command, body = command_body(call, {"start": (), "restart": (), "pause": (), "cancel": ()})
    model = services.model
    if not model.operational:
        raise ApiError(409, NOT_OPERATIONAL)
    active = model.state in _ACTIVE
    printer = services.printer
    match command:
        case "start":
            if active or model.state is CommState.CANCELLING:
                raise ApiError(409, "Printer already has an active print job, did you mean 'restart'?")
            start_selected(services)
        case "restart":
            if model.state is not CommState.PAUSED:
                raise ApiError(409, "Printer does not have an active print job or is not paused")
            with printer_errors():
                printer.restart()
        case "pause":
            if not active:
                raise ApiError(
                    409, "Printer is neither printing nor paused, 'pause' command cannot be performed"
                )
            action = body.get("action", "toggle")
            if action not in ("pause", "resume", "toggle"):
                raise ApiError(400, "action is invalid")
            paused = model.state is CommState.PAUSED
            with printer_errors():
                if action == "pause" or (action == "toggle" and not paused):
                    if model.state is CommState.PRINTING:
                        printer.pause()
                elif paused:
                    printer.resume()
        case "cancel":
            if not active:
                raise ApiError(
                    409, "Printer is neither printing nor paused, 'cancel' command cannot be performed"
                )
            with printer_errors():
                printer.cancel()
    return None


def add_routes(router: Router, authenticator: Authenticator, services: RestServices) -> None:
    router.add(
        r"/api/job",
        {
            "GET": endpoint(authenticator, partial(get_job, services)),
            "POST": endpoint(authenticator, partial(post_job, services), permissions=("PRINT",)),
        },
    )
