"""``octotrio virtual-printer``: run the virtual printer on its own and print its device path."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import TextIO

import trio

from ._firmware import SD_CARD_CAPACITY, Fault, FaultOptions, FirmwareOptions, parse_faults
from ._pty import run_virtual_printer

FAULTS_HELP = (
    "faults to inject into numbered lines, comma-separated: KIND=PROBABILITY (each line, seeded), "
    "KIND@LINE (once per print at that line number) and seed=N; KIND is one of "
    + ", ".join(fault.value for fault in Fault)
    + ", e.g. checksum=0.02,lost_ok=0.01,fatal@500,seed=7"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``virtual-printer`` options to ``parser`` (a subcommand's parser)."""
    parser.add_argument(
        "--link",
        metavar="PATH",
        help="also make PATH a symlink to the device (removed on exit) and print PATH instead",
    )
    parser.add_argument(
        "--no-autoreport",
        action="store_true",
        help="do not offer temperature autoreporting (M155), so hosts poll with M105",
    )
    parser.add_argument(
        "--no-sd-autoreport",
        action="store_true",
        help="do not offer SD status autoreporting (M27 S<n>), so hosts poll M27 while SD printing",
    )
    parser.add_argument(
        "--sd-file",
        type=sd_file_argument,
        action="append",
        default=[],
        metavar="PATH",
        help="put a copy of the file at PATH on the SD card, under its file name (repeatable)",
    )
    parser.add_argument(
        "--time-scale",
        type=_positive_float,
        default=1.0,
        metavar="FACTOR",
        help="simulated seconds per real second, e.g. 10 for heat-ups and moves 10× faster "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--faults", type=faults_argument, default=FaultOptions(), metavar="SPEC", help=FAULTS_HELP
    )
    parser.add_argument(
        "--record", metavar="PATH", help="append every executed line, with its line number, to PATH"
    )
    parser.add_argument(
        "--baud",
        type=positive_int,
        metavar="RATE",
        help="pace the pty like a serial link at RATE baud (RATE/10 bytes per second; default: unpaced)",
    )


def faults_argument(text: str) -> FaultOptions:
    """``parse_faults`` as an argparse type: a malformed spec is a usage error that says why."""
    try:
        return parse_faults(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def sd_file_argument(text: str) -> tuple[str, bytes]:
    """``--sd-file PATH`` as an argparse type: the file's name and contents, read at once; a file
    that cannot be read or does not fit on the card is a usage error."""
    path = Path(text)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {exc.strerror}") from exc
    if len(data) > SD_CARD_CAPACITY:
        raise argparse.ArgumentTypeError(f"{text} is larger than the SD card ({SD_CARD_CAPACITY} bytes)")
    return path.name, data


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def options_from_args(args: argparse.Namespace) -> FirmwareOptions:
    """The firmware options the parsed command line asks for."""
    return FirmwareOptions(
        autoreport_temp=not args.no_autoreport,
        autoreport_sd_status=not args.no_sd_autoreport,
        sd_files=dict(args.sd_file),
        time_scale=args.time_scale,
        faults=args.faults,
    )


async def serve_virtual_printer_forever(
    options: FirmwareOptions | None = None,
    link_path: str | None = None,
    *,
    record_path: str | None = None,
    baudrate: int | None = None,
    out: TextIO | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a virtual printer until cancelled, after writing its device path as a line to ``out``.

    ``out`` defaults to standard output; the line is flushed at once so that a parent process
    can read it. Cancellation shuts the printer down as ``run_virtual_printer`` describes.
    """
    async with trio.open_nursery() as nursery:
        path: str = await nursery.start(
            partial(
                run_virtual_printer, options, link_path=link_path, record_path=record_path, baudrate=baudrate
            )
        )
        print(path, file=sys.stdout if out is None else out, flush=True)
        task_status.started(path)


async def main_from_args(args: argparse.Namespace) -> None:
    """Run ``octotrio virtual-printer`` with arguments parsed by a parser ``add_arguments`` set up."""
    await serve_virtual_printer_forever(
        options_from_args(args), link_path=args.link, record_path=args.record, baudrate=args.baud
    )
