"""Uploads and downloads over real HTTP with httpx: the file streams between the socket and the
data directory in bounded pieces, a failed upload leaves nothing behind, and what is downloaded
is byte for byte what was uploaded."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from octotrio.app import RunningServer, ServerConfig, run
from octotrio.files._store import TEMP_PREFIX
from octotrio.rest._files import MAX_FIELD_BYTES
from octotrio.virtual import FirmwareOptions

from .test_end_to_end import API_KEY
from .test_jobs_end_to_end import layered_gcode

HANG_GUARD = 60  # seconds; only to turn a hang into a failure
MAX_UPLOAD = 40 * 1024 * 1024
BIG_FILE_BYTES = 32 * 1024 * 1024
MEMORY_BOUND = BIG_FILE_BYTES // 8
"""Peak Python allocation allowed while a BIG_FILE_BYTES file goes up and comes down again.

What the server holds per upload is one 256 KiB write batch (``WRITE_BUFFER_BYTES``) plus a few
64 KiB pieces (the socket read, the multipart parser's buffer, the piece handed to the file, the
piece being analysed); httpx, in the same process, reads the file in 64 KiB pieces; a download
holds one 128 KiB chunk per side. Measured: peaks of about 1.6 MiB (upload) and 1.4 MiB
(download), most of it the rest of the server and httpx at work, whatever the file's size.
Reading the body whole, as before, needs the file's size at least twice (the body, then the
part sliced out of it): 64 MiB here."""


async def start_server(nursery: trio.Nursery, data_dir: Path, max_upload_bytes: int) -> RunningServer:
    config = ServerConfig(
        port=0,
        api_key=API_KEY,
        data_dir=data_dir,
        max_upload_bytes=max_upload_bytes,
        virtual_printer=FirmwareOptions(time_scale=20.0),
    )
    running: RunningServer = await nursery.start(run, config)
    return running


@pytest.fixture
async def server(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(nursery, tmp_path / "data", MAX_UPLOAD)
    yield running
    running.request_shutdown()


def bulky_gcode(size: int) -> bytes:
    """At least ``size`` bytes of G-code: a 50-layer print padded with long comment lines, so
    that the file is big but has few lines (the analysis costs per line, and is not tested here)."""
    gcode = layered_gcode(layers=50)
    padding = b"; " + b"padding " * 125 + b"\n"
    return gcode + padding * max(0, (size - len(gcode)) // len(padding) + 1)


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=server.url, headers={"X-Api-Key": API_KEY}, timeout=HANG_GUARD
    ) as client:
        yield client


def leftovers(data_dir: Path) -> list[str]:
    """Temporary upload files in the data directory."""
    return [path.name for path in data_dir.rglob(f"{TEMP_PREFIX}*")]


def multipart(fields_before: dict[str, str], file: bytes, fields_after: dict[str, str]) -> list[bytes]:
    """A form with fields on both sides of the file part, as some OctoPrint clients send it."""

    def field(name: str, value: str) -> bytes:
        return f'--b0undary\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()

    head = b"".join(field(name, value) for name, value in fields_before.items())
    head += b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="late.gcode"\r\n'
    head += b"Content-Type: application/octet-stream\r\n\r\n"
    tail = (
        b"\r\n" + b"".join(field(name, value) for name, value in fields_after.items()) + b"--b0undary--\r\n"
    )
    return [head, file, tail]


MULTIPART_TYPE = {"Content-Type": "multipart/form-data; boundary=b0undary"}


async def chunked(pieces: list[bytes], piece_bytes: int = 10_000) -> AsyncIterator[bytes]:
    """``pieces`` as an async generator: httpx sends it with ``Transfer-Encoding: chunked``."""
    for piece in pieces:
        for start in range(0, len(piece), piece_bytes):
            yield piece[start : start + piece_bytes]


async def test_a_big_upload_and_its_download_stay_within_a_small_fraction_of_the_file_in_memory(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = tmp_path / "big.gcode"
    source.write_bytes(bulky_gcode(BIG_FILE_BYTES))
    size = source.stat().st_size
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    tracemalloc.start()
    try:
        with source.open("rb") as file:
            response = await http.post("/api/files/local", files={"file": ("big.gcode", file)})
        upload_peak = tracemalloc.get_traced_memory()[1]
        assert response.status_code == 201, response.text
        download = response.json()["files"]["local"]["refs"]["download"]
        tracemalloc.reset_peak()
        received = hashlib.sha256()
        async with http.stream("GET", download) as streamed:
            assert streamed.headers["content-length"] == str(size)
            async for chunk in streamed.aiter_raw():
                received.update(chunk)
        download_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert received.hexdigest() == digest
    assert (tmp_path / "data" / "big.gcode").stat().st_size == size
    assert upload_peak < MEMORY_BOUND, f"upload peak {upload_peak} bytes for a {size}-byte file"
    assert download_peak < MEMORY_BOUND, f"download peak {download_peak} bytes for a {size}-byte file"
    entry = (await http.get("/api/files/local/big.gcode")).json()
    assert entry["size"] == size
    assert entry["gcodeAnalysis"]["printingArea"]["maxZ"] == pytest.approx(10.0)  # 50 layers of 0.2 mm


async def test_a_chunked_upload_with_fields_after_the_file_downloads_byte_for_byte(
    http: httpx.AsyncClient,
) -> None:
    gcode = layered_gcode(layers=3) + bytes(range(256)) + b"\r\n--b0undar\r\n"  # near-delimiters too
    response = await http.post(
        "/api/files/local",
        content=chunked(multipart({"path": "sub"}, gcode, {"select": "true", "path": "ignored"})),
        headers=MULTIPART_TYPE,
    )
    assert response.status_code == 201, response.text
    assert response.request.headers["transfer-encoding"] == "chunked"
    answer = response.json()
    assert answer["effectiveSelect"] is True  # "select" came after the file
    local = answer["files"]["local"]
    assert local["path"] == "sub/late.gcode"  # the first "path" counts
    assert (await http.get("/api/job")).json()["job"]["file"]["path"] == "sub/late.gcode"

    download = await http.get(local["refs"]["download"])
    assert download.status_code == 200
    assert download.content == gcode
    assert download.headers["content-type"] == "text/plain"
    assert download.headers["content-length"] == str(len(gcode))
    assert download.headers["content-disposition"] == (
        "attachment; filename=\"late.gcode\"; filename*=UTF-8''late.gcode"
    )
    assert download.headers["cache-control"] == "max-age=0, must-revalidate, private"
    head = await http.head(local["refs"]["download"])
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(gcode))


async def test_a_form_field_too_big_to_keep_gets_400_and_nothing_is_stored(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await http.post(
        "/api/files/local",
        content=chunked(multipart({}, b"G28\n", {"userdata": "x" * (MAX_FIELD_BYTES + 1)})),
        headers=MULTIPART_TYPE,
    )
    assert response.status_code == 400
    assert response.json() == {"error": f"A form field is larger than {MAX_FIELD_BYTES} bytes"}
    assert os.listdir(tmp_path / "data") == []


async def test_downloads_refuse_missing_files_escapes_and_callers_without_credentials(
    server: RunningServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    response = await http.post("/api/files/local", files={"file": ("part.gcode", b"G28\n")})
    download = response.json()["files"]["local"]["refs"]["download"]
    (tmp_path / "secret.gcode").write_bytes(b"outside the data directory\n")
    (tmp_path / "data" / ".upload-x.gcode").write_bytes(b"hidden\n")
    os.symlink(tmp_path / "secret.gcode", tmp_path / "data" / "link.gcode")
    for path in [
        "missing.gcode",
        "..%2Fsecret.gcode",
        "%2E%2E/secret.gcode",
        "link.gcode",
        ".upload-x.gcode",
        "sub",
    ]:
        refused = await http.get(f"/downloads/files/local/{path}")
        assert refused.status_code == 404, path
        assert refused.json()["error"].startswith("File not found on 'local'")

    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(download)).status_code == 403
        assert (await anonymous.get(download, headers={"X-Api-Key": "wrong"})).status_code == 403
        by_query = await anonymous.get(download, params={"apikey": API_KEY})
        assert by_query.content == b"G28\n"


async def test_a_client_gone_mid_upload_leaves_nothing_and_the_server_serves_on(
    server: RunningServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    head, file, tail = multipart({}, bulky_gcode(8 * 1024 * 1024), {})
    announced = len(head) + len(file) + len(tail)
    request = (
        f"POST /api/files/local HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {API_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {announced}\r\n\r\n"
    ).encode()
    with trio.fail_after(HANG_GUARD):
        stream = await trio.open_tcp_stream("127.0.0.1", server.http.port)
        await stream.send_all(request + head + file[: len(file) // 2])
        # Polling the file system: the temporary file is the upload under way.
        while not leftovers(data_dir):  # noqa: ASYNC110
            await trio.sleep(0.01)
        await stream.aclose()
        while leftovers(data_dir):  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert os.listdir(data_dir) == []
    assert (await http.get("/api/files")).json()["files"] == []
    response = await http.post("/api/files/local", files={"file": ("after.gcode", b"G28\n")})
    assert response.status_code == 201


async def test_uploads_over_the_limit_get_413_whether_announced_or_chunked(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    limit = 1024 * 1024
    server = await start_server(nursery, tmp_path / "data", limit)
    too_big = bulky_gcode(8 * limit)
    async with httpx.AsyncClient(base_url=server.url, headers={"X-Api-Key": API_KEY}) as http:
        with trio.fail_after(HANG_GUARD):
            announced = await http.post("/api/files/local", files={"file": ("big.gcode", too_big)})
            streamed = await http.post(
                "/api/files/local",
                content=chunked(multipart({"select": "true"}, too_big, {})),
                headers=MULTIPART_TYPE,
            )
            # Only just over: the body was read whole, so the connection may serve on.
            just_over = await http.post(
                "/api/files/local", files={"file": ("big.gcode", too_big[: limit - 100])}
            )
        for response in (announced, streamed, just_over):
            assert response.status_code == 413
            assert response.json() == {"error": "Request body too large."}
        # The rest of the body was never read: the server said so and closed the connection.
        assert announced.headers["connection"] == streamed.headers["connection"] == "close"
        assert leftovers(tmp_path / "data") == []
        assert (await http.get("/api/files")).json()["files"] == []
        assert (await http.get("/api/job")).json()["job"]["file"]["path"] is None
    server.request_shutdown()
