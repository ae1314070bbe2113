"""The ``octotrio`` command: ``serve`` and ``virtual-printer``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys

import trio

from octotrio import __version__, virtual
from octotrio.app import RunningServer, ServerConfig, run

log = logging.getLogger("octotrio")


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
        "--virtual-printer-link",
        metavar="PATH",
        help="also expose the built-in printer's pty at this symlink",
    )

    serve.add_argument(
        "--api-key",
        default=os.environ.get("OCTOTRIO_API_KEY"),
        help="global API key for REST calls (default: $OCTOTRIO_API_KEY, else a random key printed at start)",
    )

    virtual_parser = commands.add_parser(
        "virtual-printer", help="run only the virtual Marlin printer on a pty"
    )
    virtual.add_arguments(virtual_parser)
    return parser


async def _serve(config: ServerConfig) -> None:
    """Serve until SIGINT or SIGTERM, then shut down in order (clients get proper close frames)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            server: RunningServer = await nursery.start(run, config)
            print(
                f"octotrio {__version__} serving on {server.url} (printer on {server.printer_port})\n"
                f"REST API key: {config.api_key}",
                flush=True,
            )
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                server.request_shutdown()
                break


def main(argv: list[str] | None = None) -> None:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        config = ServerConfig(
            host=args.host,
            port=args.port,
            serial_port=args.serial,
            baudrate=args.baud,
            virtual_printer_link=args.virtual_printer_link,
        )
        if args.api_key:
            config = dataclasses.replace(config, api_key=args.api_key)
        trio.run(_serve, config)
    else:
        trio.run(virtual.main_from_args, args)
    sys.exit(0)
