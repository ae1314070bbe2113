"""``/api/files``: list, upload, select and delete G-code in the ``local`` storage (octoprint-push.md §12.5).

Uploads arrive as one ``multipart/form-data`` body, read whole into memory by the HTTP server and
bounded by ``--max-upload-mb`` (413 beyond it), then written to the data directory atomically.
"""

from __future__ import annotations

from functools import partial
from urllib.parse import quote, unquote

from octotrio.files import InvalidPath, StoredFile, StoredFolder, is_gcode_name, join_path, validate_file_path
from octotrio.http import Router
from octotrio.printer import CommState, JobFile
from octotrio.state import FileDeselected, FileRemoved, FileSelected, FileUploaded, JSONObject

from ._commands import command_body, is_true
from ._common import ApiError, Authenticator, Call, Created, endpoint
from ._job import start_selected
from ._multipart import MultipartError, parse_form_data
from ._sdcard import sd_entries
from ._services import RestServices


def _base_url(call: Call) -> str:
    return f"http://{call.request.header('host') or '127.0.0.1'}"


def _refs(call: Call, path: str, *, download: bool = True) -> JSONObject:
    quoted = quote(path)
    refs = {"resource": f"{_base_url(call)}/api/files/local/{quoted}"}
    if download:
        refs["download"] = f"{_base_url(call)}/downloads/files/local/{quoted}"
    return refs


def _entry(call: Call, entry: StoredFile | StoredFolder) -> JSONObject:
    """One listing entry in OctoPrint's shape."""
    if isinstance(entry, StoredFolder):
        return {
            "name": entry.name,
            "display": entry.name,
            "path": entry.path,
            "type": "folder",
            "typePath": ["folder"],
            "origin": "local",
            "refs": _refs(call, entry.path, download=False),
            "children": [_entry(call, child) for child in entry.children],
        }
    result: JSONObject = {
        "name": entry.name,
        "display": entry.name,
        "path": entry.path,
        "type": "machinecode",
        "typePath": ["machinecode", "gcode"],
        "origin": "local",
        "refs": _refs(call, entry.path),
        "size": entry.size,
        "date": entry.date,
    }
    if entry.analysis is not None:
        result["gcodeAnalysis"] = entry.analysis
    return result


def job_file(stored: StoredFile) -> JobFile:
    return JobFile(name=stored.name, path=stored.path, origin="local", size=stored.size, date=stored.date)


async def get_files(services: RestServices, call: Call) -> object:
    free, total = await services.files.usage()
    entries = await services.files.list_files()
    files = [*(_entry(call, entry) for entry in entries), *sd_entries(services, call)]
    return {"files": files, "free": free, "total": total}


def _path_param(call: Call) -> str:
    """The ``<path>`` of the URL, percent-decoded and validated (404 for a path that cannot exist)."""
    path = unquote(call.path_params["path"])
    try:
        return validate_file_path(path)
    except InvalidPath:
        raise ApiError(404, f"File not found on 'local': {path}") from None


async def _existing(services: RestServices, call: Call) -> StoredFile:
    path = _path_param(call)
    stored = await services.files.get(path)
    if stored is None:
        raise ApiError(404, f"File not found on 'local': {path}")
    return stored


def _is_busy(services: RestServices, path: str) -> bool:
    return any(busy["path"] == path for busy in services.model.busy_files())


async def get_file(services: RestServices, call: Call) -> object:
    return _entry(call, await _existing(services, call))


async def _select(services: RestServices, call: Call, stored: StoredFile, *, print_after: bool) -> None:
    """Select ``stored`` (``FileSelected``) and start it when ``print_after``."""
    analysed = await services.files.analyse(stored.path) or stored
    services.feed.submit(FileSelected(job_file(analysed), call.principal.name, analysed.analysis))
    if print_after:
        start_selected(services)


async def post_upload(services: RestServices, call: Call) -> object:
    try:
        form = parse_form_data(call.request.header("content-type"), call.request.body)
    except MultipartError as error:
        raise ApiError(400, str(error)) from None
    upload = form.get("file")
    if upload is None or upload.filename is None:
        raise ApiError(400, "No file included")
    name = form["filename"].text() if "filename" in form else upload.filename
    if not is_gcode_name(name):
        raise ApiError(415, f'Could not upload the file "{name}", invalid type')
    try:
        path = join_path(form["path"].text() if "path" in form else "", name)
    except InvalidPath as error:
        raise ApiError(400, str(error)) from None
    select = "select" in form and is_true(form["select"].text())
    print_after = "print" in form and is_true(form["print"].text())
    if _is_busy(services, path):
        raise ApiError(409, f"Trying to overwrite file that is currently being printed: {path}")
    if "noOverwrite" in form and is_true(form["noOverwrite"].text()) and await services.files.get(path):
        raise ApiError(409, f"File {path} already exists and noOverwrite was set")

    stored = await services.files.save(path, upload.data)
    model = services.model
    effective_select = (select or print_after) and not model.busy
    effective_print = print_after and model.state is CommState.OPERATIONAL
    analysis = stored.analysis or {}  # save() always analyses what it writes
    services.feed.submit(
        FileUploaded(path, stored.name, analysis, select, print_after, effective_select, effective_print)
    )
    if effective_select:
        await _select(services, call, stored, print_after=effective_print)
    refs = _refs(call, path)
    body = {
        "done": True,
        "effectivePrint": effective_print,
        "effectiveSelect": effective_select,
        "files": {"local": {"name": stored.name, "origin": "local", "path": path, "refs": refs}},
    }
    return Created(body, location=refs["resource"])


async def post_file_command(services: RestServices, call: Call) -> object:
    _command, body = command_body(call, {"select": ()})
    stored = await _existing(services, call)
    print_after = is_true(body.get("print", False))
    model = services.model
    if model.busy:
        raise ApiError(409, "Printer is already printing, cannot select a new file")
    if print_after and model.state is not CommState.OPERATIONAL:
        raise ApiError(409, "Printer is not operational, cannot directly start printing")
    await _select(services, call, stored, print_after=print_after)
    return None


async def delete_file(services: RestServices, call: Call) -> object:
    stored = await _existing(services, call)
    if _is_busy(services, stored.path):
        raise ApiError(409, f"Trying to delete a file that is currently in use: {stored.path}")
    selected = services.model.selected
    if selected is not None and selected.file.origin == "local" and selected.file.path == stored.path:
        services.feed.submit(FileDeselected())
    try:
        await services.files.remove(stored.path)
    except FileNotFoundError:
        raise ApiError(404, f"File not found on 'local': {stored.path}") from None
    services.feed.submit(FileRemoved(stored.path, stored.name))
    return None


def add_routes(router: Router, authenticator: Authenticator, services: RestServices) -> None:
    listing = endpoint(authenticator, partial(get_files, services))
    router.add(r"/api/files", {"GET": listing})
    router.add(
        r"/api/files/local",
        {
            "GET": listing,
            "POST": endpoint(authenticator, partial(post_upload, services), permissions=("FILES_UPLOAD",)),
        },
        max_body_bytes=services.max_upload_bytes,
    )
    router.add(
        r"/api/files/local/(?P<path>.+)",
        {
            "GET": endpoint(authenticator, partial(get_file, services)),
            "POST": endpoint(
                authenticator, partial(post_file_command, services), permissions=("FILES_SELECT",)
            ),
            "DELETE": endpoint(authenticator, partial(delete_file, services), permissions=("FILES_DELETE",)),
        },
    )
