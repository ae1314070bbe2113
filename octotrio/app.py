"""``octotrio serve``: every service under one root nursery.

    root nursery
    ├── virtual printer   (only with the built-in printer)   octotrio.virtual
    ├── printer link      serial port → PrinterEvents        octotrio.printer
    ├── aggregator        PrinterEvents → StateHub ticks     octotrio.state
    └── HTTP server       /sockjs → one push session each    octotrio.http, octotrio.push

Shutdown has one order: stop accepting and close every client session properly, then
cancel the rest (the printer link closes the serial port on its way out).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from octotrio import __version__
from octotrio.auth import AccessConfig, AccessControl
from octotrio.files import FileStore, open_file_store, temporary_file_store
from octotrio.http import HttpServer, serve_http
from octotrio.printer import DEFAULT_WINDOW, PrinterEvent, PrinterService, run_printer_service
from octotrio.push import OriginCheckingRouter, ServerInfo, serve_push_session
from octotrio.rest import AccessAuthenticator, AccessEndpoints, LoginEndpoints, RestServices, add_rest_routes
from octotrio.sockjs import HEARTBEAT_INTERVAL, RESPONSE_LIMIT
from octotrio.state import PrinterModel, StateHub, run_aggregator
from octotrio.virtual import FirmwareOptions, run_virtual_printer
from octotrio.web import add_routes as add_status_page_routes

PRINTER_EVENT_BUFFER = 256
"""Printer events waiting for the aggregator. When full, the link's reader waits and the
serial port's own buffer absorbs the burst; the aggregator does little work per event."""

DEFAULT_MAX_UPLOAD_BYTES = 256 * 1024 * 1024
"""Largest G-code upload: big prints are tens of MB. Uploads stream to disk holding a few hundred
KiB of memory each, so this bounds the disk space one upload may fill, not memory
(``--max-upload-mb``)."""

SHUTDOWN_GRACE = 2.0
"""Seconds clients get to receive their close frames on shutdown before they are dropped."""


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``octotrio serve`` can be told. Without ``serial_port`` the built-in
    virtual printer is started and connected."""

    host: str = "127.0.0.1"
    port: int = 5000
    serial_port: str | None = None
    baudrate: int = 115200
    ok_window: int = DEFAULT_WINDOW
    """Commands that may await their ok at once (``--ok-window``, OctoPrint's ``serial.ackMax``)."""
    virtual_printer: FirmwareOptions = field(default_factory=FirmwareOptions)
    virtual_printer_link: str | None = None
    virtual_printer_record: str | None = None
    """Append every line the built-in printer executes to this file (``--virtual-printer-record``)."""
    virtual_printer_baud: int | None = None
    """Pace the built-in printer's pty like a serial link at this baud rate (default: unpaced)."""
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    """The global API key for REST calls; a random one unless given (``--api-key``)."""
    access: AccessConfig = field(default_factory=AccessConfig)
    """Users, groups, API keys and access settings (``--config``); none by default."""
    access_config_path: Path | None = None
    """The file ``access`` came from; user changes over ``/api/access/users`` are written back to it."""
    sockjs_test_services: bool = False
    """Mount the SockJS protocol test services (``/echo``, ``/close``, ...) at the root."""
    sockjs_response_limit: int = RESPONSE_LIMIT
    """Bytes after which a SockJS streaming response ends and the client reconnects (S7)."""
    sockjs_heartbeat: float = HEARTBEAT_INTERVAL
    """Seconds between SockJS heartbeats (S9)."""
    data_dir: Path | None = None
    """Where uploaded G-code files live (``--data-dir``); None: a temporary directory removed at exit."""
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES


@dataclass
class RunningServer:
    """A handle on a started server: where it listens, and how to stop it (or parts of it)."""

    http: HttpServer
    printer: PrinterService
    printer_port: str
    hub: StateHub
    _shutdown_requested: trio.Event
    _virtual_printer_scope: trio.CancelScope | None
    access: AccessControl

    @property
    def url(self) -> str:
        return self.http.url

    def request_shutdown(self) -> None:
        """Start the ordered shutdown; :func:`run` returns when it is complete."""
        self._shutdown_requested.set()

    def stop_virtual_printer(self) -> None:
        """Stop the built-in printer as if its cable were pulled (the server keeps running)."""
        if self._virtual_printer_scope is not None:
            self._virtual_printer_scope.cancel()


async def _run_cancellable(
    scope: trio.CancelScope,
    options: FirmwareOptions,
    link_path: str | None,
    record_path: str | None = None,
    baudrate: int | None = None,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    with scope:
        await run_virtual_printer(
            options, link_path=link_path, record_path=record_path, baudrate=baudrate, task_status=task_status
        )


async def run(
    config: ServerConfig, *, task_status: trio.TaskStatus[RunningServer] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the server until :meth:`RunningServer.request_shutdown` is called.

    Reports a :class:`RunningServer` once the HTTP port is listening and the printer link is
    started. On cancellation everything stops at once without the polite close frames; use
    ``request_shutdown`` for a clean stop.
    """
    hub = StateHub(PrinterModel(), wall_clock=time.time)
    shutdown_requested = trio.Event()
    printer_events_send, printer_events_receive = trio.open_memory_channel[PrinterEvent](PRINTER_EVENT_BUFFER)
    async with contextlib.AsyncExitStack() as stack, trio.open_nursery() as root:
        files: FileStore = (
            await open_file_store(config.data_dir)
            if config.data_dir is not None
            else await stack.enter_async_context(temporary_file_store())
        )
        feed = await root.start(run_aggregator, printer_events_receive, hub)

        virtual_printer_scope = None
        if config.serial_port is None:
            virtual_printer_scope = trio.CancelScope()
            printer_port: str = await root.start(
                _run_cancellable,
                virtual_printer_scope,
                config.virtual_printer,
                config.virtual_printer_link,
                config.virtual_printer_record,
                config.virtual_printer_baud,
            )
        else:
            printer_port = config.serial_port
        printer: PrinterService = await root.start(
            partial(
                run_printer_service,
                printer_events_send,
                default_port=printer_port,
                default_baudrate=config.baudrate,
                window=config.ok_window,
            )
        )
        await printer.connect()

        access = AccessControl(config.access, global_api_key=config.api_key)
        authenticator = AccessAuthenticator(access)
        router = OriginCheckingRouter(allow_cross_origin=config.access.allow_cross_origin)
        ports = [printer_port]
        add_rest_routes(
            router,
            authenticator,
            RestServices(feed, files, printer, lambda: ports, max_upload_bytes=config.max_upload_bytes),
        )
        LoginEndpoints(authenticator, hub).add_routes(router)
        AccessEndpoints(authenticator, config.access_config_path).add_routes(router)
        add_status_page_routes(router)
        app = partial(serve_push_session, hub=hub, server=ServerInfo(__version__), access=access)
        http: HttpServer = await root.start(
            partial(
                serve_http,
                host=config.host,
                port=config.port,
                sockjs_app=app,
                router=router,
                heartbeat_interval=config.sockjs_heartbeat,
                response_limit=config.sockjs_response_limit,
                test_services=config.sockjs_test_services,
            )
        )
        task_status.started(
            RunningServer(http, printer, printer_port, hub, shutdown_requested, virtual_printer_scope, access)
        )

        await shutdown_requested.wait()
        await http.shutdown(timeout=SHUTDOWN_GRACE)
        root.cancel_scope.cancel()
