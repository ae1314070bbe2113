"""``/api/files``: list, upload, select and delete G-code in the ``local`` storage (octoprint-push.md §12.5),
and ``/downloads/files/local/<path>``: the files themselves.

An upload is one ``multipart/form-data`` body, bounded by ``--max-upload-mb`` (413 beyond it). It
is parsed as it arrives: the ``file`` part goes straight into a temporary file in the data
directory, the other fields (``path``, ``select``, ``print``...; before or after the file) are
kept, and once the body is complete the file is renamed into place, or removed when the upload
is refused or the client goes away. A download streams the file from disk. Neither ever holds
more than a chunk of a file in memory.
"""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from functools import partial
from urllib.parse import quote, unquote

from octotrio.files import (
    InvalidPath,
    StoredFile,
    StoredFileReader,
    StoredFolder,
    Upload,
    is_gcode_name,
    join_path,
    validate_file_path,
)
from octotrio.http import Handler, HttpExchange, RequestBody, Router
from octotrio.printer import CommState, JobFile
from octotrio.state import FileDeselected, FileRemoved, FileSelected, FileUploaded, JSONObject

from ._commands import command_body, is_true
from ._common import ApiError, Authenticator, Call, Created, authorize, endpoint, send_json
from ._job import check_selectable, start_selected
from ._multipart import MultipartError, MultipartParser, PartData, PartStart
from ._sdcard import sd_entries
from ._services import RestServices

MAX_FIELD_BYTES = 64 * 1024
"""Largest form field other than the file (``path``, ``select``, ``userdata``...): fields are
kept in memory until the form is complete, and none of OctoPrint's needs more."""

DOWNLOAD_CHUNK_BYTES = 128 * 1024
"""Bytes read from disk and written to the client at a time by a download: what one download
holds in memory, and few enough worker-thread hops for a large file."""

DOWNLOAD_CONTENT_TYPE = "text/plain"
"""OctoPrint's type for ``machinecode``/``gcode`` files."""


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


def _not_found(path: str) -> ApiError:
    return ApiError(404, f"File not found on 'local': {path}")


def _path_param(path_params: Mapping[str, str]) -> str:
    """The ``<path>`` of the URL, percent-decoded and validated (404 for a path that cannot exist)."""
    path = unquote(path_params["path"])
    try:
        return validate_file_path(path)
    except InvalidPath:
        raise _not_found(path) from None


async def _existing(services: RestServices, call: Call) -> StoredFile:
    path = _path_param(call.path_params)
    stored = await services.files.get(path)
    if stored is None:
        raise _not_found(path)
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


async def _receive_form(
    body: RequestBody, parser: MultipartParser, upload: Upload
) -> tuple[dict[str, str], str | None]:
    """Read the whole form from ``body``: ``(fields, file name)``.

    The first part of each name counts; later ones are dropped. A ``file`` part
    with a file name streams into ``upload``; its file name is returned (None without one).
    Every other part is a field, kept as text up to :data:`MAX_FIELD_BYTES`.
    """
    fields: dict[str, bytearray] = {}
    seen: set[str] = set()
    filename: str | None = None
    sink: Upload | bytearray | None = None  # where the current part's data goes
    ended = False
    while not ended:
        chunk = await body.receive_some()
        ended = not chunk
        parser.receive_data(chunk)
        while (event := parser.next_event()) is not None:
            if isinstance(event, PartStart):
                sink = None
                if event.name in seen:
                    continue
                seen.add(event.name)
                if event.name == "file" and event.filename is not None:
                    filename, sink = event.filename, upload
                else:
                    sink = fields[event.name] = bytearray()
            elif isinstance(event, PartData) and sink is not None:
                if isinstance(sink, Upload):
                    await sink.write(event.data)
                    continue
                sink += event.data
                if len(sink) > MAX_FIELD_BYTES:
                    raise ApiError(400, f"A form field is larger than {MAX_FIELD_BYTES} bytes")
    return {name: value.decode("utf-8", "replace") for name, value in fields.items()}, filename


async def post_upload(services: RestServices, call: Call) -> object:
    try:
        parser = MultipartParser.for_content_type(call.request.header("content-type"))
    except MultipartError as error:
        raise ApiError(400, str(error)) from None
    async with services.files.receive_upload() as upload:
        try:
            form, filename = await _receive_form(call.exchange.body, parser, upload)
        except MultipartError as error:
            raise ApiError(400, str(error)) from None
        if filename is None:
            raise ApiError(400, "No file included")
        name = form.get("filename", filename)
        if not is_gcode_name(name):
            raise ApiError(415, f'Could not upload the file "{name}", invalid type')
        try:
            path = join_path(form.get("path", ""), name)
        except InvalidPath as error:
            raise ApiError(400, str(error)) from None
        select = is_true(form.get("select", False))
        print_after = is_true(form.get("print", False))
        if _is_busy(services, path):
            raise ApiError(409, f"Trying to overwrite file that is currently being printed: {path}")
        if is_true(form.get("noOverwrite", False)) and await services.files.get(path):
            raise ApiError(409, f"File {path} already exists and noOverwrite was set")
        stored = await upload.commit(path)

    model = services.model
    effective_select = (select or print_after) and not model.busy
    effective_print = print_after and model.state is CommState.OPERATIONAL
    analysis = stored.analysis or {}  # commit() always analyses what it writes
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
    check_selectable(services, print_after=print_after)
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
        raise _not_found(stored.path) from None
    services.feed.submit(FileRemoved(stored.path, stored.name))
    return None


async def _send_file(exchange: HttpExchange, path: str, reader: StoredFileReader) -> None:
    """Answer with the file ``reader`` reads, streamed from disk (only its headers for HEAD),
    with OctoPrint's download headers."""
    name = quote(path.rsplit("/", 1)[-1])
    headers = [
        ("Content-Type", DOWNLOAD_CONTENT_TYPE),
        ("Content-Length", str(reader.size)),
        ("Content-Disposition", f"attachment; filename=\"{name}\"; filename*=UTF-8''{name}"),
        ("Last-Modified", email.utils.formatdate(reader.mtime, usegmt=True)),
        ("Cache-Control", "max-age=0, must-revalidate, private"),
        ("Expires", "-1"),
        ("X-Original-Content-Length", str(reader.size)),
    ]
    await exchange.start_response(200, headers)
    remaining = reader.size if exchange.request.method != "HEAD" else 0
    while remaining > 0:
        chunk = await reader.read(min(DOWNLOAD_CHUNK_BYTES, remaining))
        if not chunk:
            # Uploads replace files by renaming; only an edit in place can shrink one.
            raise RuntimeError(f"{path} shrank while it was being sent")
        await exchange.send_chunk(chunk)
        remaining -= len(chunk)
    await exchange.end_response()


def download_handler(authenticator: Authenticator, services: RestServices) -> Handler:
    """``GET``/``HEAD /downloads/files/local/<path>``: needs ``FILES_DOWNLOAD``, with the same
    credentials as the REST API (API key or login session), as OctoPrint; 404 ``{"error": ...}``
    for a path that is not a file in the data directory."""

    async def handle(exchange: HttpExchange) -> None:
        if await authorize(authenticator, exchange, ("FILES_DOWNLOAD",)) is None:
            return
        try:
            path = _path_param(exchange.path_params)
            try:
                reader = await services.files.open_file(path)
            except FileNotFoundError:
                raise _not_found(path) from None
        except ApiError as error:
            await send_json(exchange, error.status, {"error": error.message})
            return
        async with reader:
            await _send_file(exchange, path, reader)

    return handle


def add_routes(router: Router, authenticator: Authenticator, services: RestServices) -> None:
    # OctoPrint's file API documents FILES_LIST for every listing and file lookup.
    listing = endpoint(authenticator, partial(get_files, services), permissions=("FILES_LIST",))
    router.add(r"/api/files", {"GET": listing})
    router.add(
        r"/api/files/local",
        {
            "GET": listing,
            "POST": endpoint(authenticator, partial(post_upload, services), permissions=("FILES_UPLOAD",)),
        },
        max_body_bytes=services.max_upload_bytes,
        stream_body=True,
    )
    router.add(
        r"/api/files/local/(?P<path>.+)",
        {
            "GET": endpoint(authenticator, partial(get_file, services), permissions=("FILES_LIST",)),
            "POST": endpoint(
                authenticator, partial(post_file_command, services), permissions=("FILES_SELECT",)
            ),
            "DELETE": endpoint(authenticator, partial(delete_file, services), permissions=("FILES_DELETE",)),
        },
    )
    download = download_handler(authenticator, services)
    router.add(r"/downloads/files/local/(?P<path>.+)", {"GET": download, "HEAD": download})
