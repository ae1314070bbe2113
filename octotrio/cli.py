"""The ``octotrio`` command: ``serve`` and ``virtual-printer``."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import signal
import sys
from pathlib import Path

import trio

from conformance import _cli as conformance_cli
from octotrio import __version__, virtual
from octotrio.app import DEFAULT_MAX_UPLOAD_BYTES, RunningServer, ServerConfig, run
from octotrio.auth import ConfigError, load_config
from octotrio.auth._cli import add_arguments as add_user_arguments
from octotrio.auth._cli import config_argument, run_user_command
from octotrio.printer import DEFAULT_WINDOW
from octotrio.sockjs import HEARTBEAT_INTERVAL, RESPONSE_LIMIT

log = logging.getLogger("octotrio")

GC_YOUNG_THRESHOLD = 50_000
"""Net container allocations between two young-generation collections (Python's default: 700).
Every client holds about 200 long-lived objects (its tasks, coroutines, cancel scopes, buffers),
and each tick allocates a few short-lived ones per session (wake-up events, outcomes). With the
default, a storm of 1000 connecting clients ran hundreds of young and several full collections
(about a third of the server's CPU, measured with ``gc.callbacks``), and during fan-out to 1000
clients the promoted short-lived objects ended in full collections that paused the server for up
to 0.3 s (a tick's arrivals spread by as much). 50,000 young objects are a few MiB; cyclic garbage
is still collected, later (the older generations keep their defaults), and everything without
cycles is still freed at once by reference counts."""


def _configure_garbage_collector() -> None:
    """Tune the cyclic garbage collector for a long-running server (see :data:`GC_YOUNG_THRESHOLD`).

    Called once the server runs: what exists then (modules, configuration, the running server's
    own tasks) lives as long as the process, so it is frozen out of every later collection.
    """
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="octotrio", description=__doc__)
    parser.add_argument("--version", action="version", version=f"octotrio {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the push API server (built-in virtual printer by default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=5000, help="TCP port; 0 picks a free one (default 5000)")
    serve.add_argument("--serial", metavar="PORT", help="drive a real printer on this serial port instead")
    serve.add_argument("--baud", type=int, default=115200, help="baud rate for --serial (default 115200)")
    serve.add_argument(
        "--ok-window",
        type=virtual.positive_int,
        default=DEFAULT_WINDOW,
        metavar="N",
        help="commands that may await their ok at once (OctoPrint's serial.ackMax, default 1); up to "
        "Marlin's BUFSIZE (4 on a stock build) streams ahead and fills a fast wire",
    )
    serve.add_argument(
        "--virtual-printer-link",
        metavar="PATH",
        help="also expose the built-in printer's pty at this symlink",
    )
    serve.add_argument(
        "--virtual-printer-faults", type=virtual.faults_argument, metavar="SPEC", help=virtual.FAULTS_HELP
    )
    serve.add_argument(
        "--virtual-printer-sd-file",
        type=virtual.sd_file_argument,
        action="append",
        default=[],
        metavar="PATH",
        help="put a copy of the file at PATH on the built-in printer's SD card (repeatable)",
    )
    serve.add_argument(
        "--virtual-printer-record",
        metavar="PATH",
        help="append every line the built-in printer executes to PATH",
    )
    serve.add_argument(
        "--virtual-printer-baud",
        type=virtual.positive_int,
        metavar="RATE",
        help="pace the built-in printer's pty like a serial link at RATE baud (default: unpaced)",
    )

    serve.add_argument(
        "--api-key",
        default=os.environ.get("OCTOTRIO_API_KEY"),
        help="global API key for REST calls (default: $OCTOTRIO_API_KEY, else a random key printed at start)",
    )

    serve.add_argument(
        "--data-dir",
        type=Path,
        default=_default_data_dir(),
        help="where uploaded G-code files are kept (default: $XDG_DATA_HOME/octotrio, else "
        "~/.local/share/octotrio)",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES // (1024 * 1024),
        help="largest G-code upload in MiB (the whole request body); uploads stream to disk, so this "
        "bounds disk use, not memory (default 256)",
    )

    config_argument(serve)
    user_parser = commands.add_parser("user", help="manage users in the config file")
    add_user_arguments(user_parser)

    serve.add_argument(
        "--sockjs-test-services",
        action="store_true",
        help="also mount the SockJS protocol test services /echo, /close, /disabled_websocket_echo "
        "and /cookie_needed_echo at the root",
    )
    serve.add_argument(
        "--sockjs-response-limit",
        type=int,
        default=RESPONSE_LIMIT,
        metavar="BYTES",
        help="bytes after which a SockJS streaming response ends and the client reconnects "
        "(default: %(default)s)",
    )
    serve.add_argument(
        "--sockjs-heartbeat",
        type=float,
        default=HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help="seconds between SockJS heartbeat frames (default: %(default)s)",
    )

    virtual_parser = commands.add_parser(
        "virtual-printer", help="run only the virtual Marlin printer on a pty"
    )
    virtual.add_arguments(virtual_parser)

    conform_parser = commands.add_parser(
        "conform", help="run the conformance suite against any push API server (spec/requirements.toml)"
    )
    conformance_cli.add_arguments(conform_parser)
    return parser


async def _serve(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down in order (clients get proper close frames)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: RunningServer = await nursery.start(run, config)
            _configure_garbage_collector()
            print(
                f"octotrio {__version__} serving on {server.url} (printer on {server.printer_port})\n"
                f"REST API key: {config.api_key}",
                flush=True,
            )
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                server.request_shutdown()
                break


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "octotrio"


def main(argv: list[str] | None = None) -> None:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        if args.max_upload_mb < 1:
            parser.error("--max-upload-mb must be at least 1")
        if args.sockjs_response_limit < 1 or not args.sockjs_heartbeat > 0:
            parser.error("--sockjs-response-limit and --sockjs-heartbeat must be positive")
        config = ServerConfig(
            host=args.host,
            port=args.port,
            serial_port=args.serial,
            baudrate=args.baud,
            ok_window=args.ok_window,
            virtual_printer_link=args.virtual_printer_link,
            virtual_printer_record=args.virtual_printer_record,
            virtual_printer_baud=args.virtual_printer_baud,
            sockjs_test_services=args.sockjs_test_services,
            sockjs_response_limit=args.sockjs_response_limit,
            sockjs_heartbeat=args.sockjs_heartbeat,
            data_dir=args.data_dir,
            max_upload_bytes=args.max_upload_mb * 1024 * 1024,
        )
        if args.api_key:
            config = dataclasses.replace(config, api_key=args.api_key)
        config = dataclasses.replace(
            config,
            virtual_printer=virtual.FirmwareOptions(
                faults=args.virtual_printer_faults or virtual.FaultOptions(),
                sd_files=dict(args.virtual_printer_sd_file),
            ),
        )
        try:
            config = dataclasses.replace(
                config, access=load_config(args.config), access_config_path=args.config
            )
        except ConfigError as error:
            sys.exit(f"octotrio: {error}")
        trio.run(_serve, config)
    elif args.command == "user":
        sys.exit(run_user_command(args))
    elif args.command == "conform":
        sys.exit(conformance_cli.main_from_args(args))
    else:
        trio.run(virtual.main_from_args, args)
    sys.exit(0)
