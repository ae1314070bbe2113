"""``python -m bench fanout|serial|slow|storm|all``: run benchmarks, print a table, write JSON.

Each benchmark runs against octotrio (started here: ``octotrio serve --port 0`` on 127.0.0.1) and,
with ``--with-octoprint``, against a real OctoPrint 1.11.8 (``scripts/install-octoprint.sh``) in the
same run, and prints octotrio's figures as a ratio of OctoPrint's. ``--target URL`` benchmarks an
already running server instead (push benchmarks only; give its ``--api-key``). Results go to
``bench/results/<benchmark>-<time>.json`` with the machine description; the runner checks the
issue's targets and says which hold.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import trio

from bench import _report
from bench._clock import MonotonicClock
from bench._fanout import measure_fanout
from bench._machine import describe_machine
from bench._serial import StreamFactory, has_job_api, link_driver, measure_serial, print_over_rest
from bench._servers import (
    BENCH_DIR,
    Server,
    export_revision,
    install_octoprint,
    octoprint_installed,
    run_firmware,
    run_octoprint,
    run_octotrio,
)
from bench._slow import measure_slow
from bench._storm import measure_storm

RESULTS_DIR = BENCH_DIR / "results"
ACTIVITY_INTERVAL = 0.1
"""Seconds between the bench firmware's temperature reports during push benchmarks: a steady
stream of log lines and temperatures, like a print's, so every 0.5 s tick has news."""

SERIAL_BAUDS = (0, 115200, 250000)
"""0: the firmware answers at once (host overhead); then the two common Marlin baud rates."""
SERIAL_OK_WINDOWS = (1, 4)
"""1: one command awaits its ok, the default of both hosts; 4: streaming ahead as far as a stock
Marlin's BUFSIZE takes (octotrio ``--ok-window 4``, OctoPrint ``serial.ackMax: 4``)."""
SLOW_READERS = 200
"""Readers around the stuck client (the issue: one stuck client among 200 readers)."""


class ServerFactory(Protocol):
    """Starts one server under test, given the path of the printer's pty, a port (0: any) and the
    ok window of its printer link (1, the default of both hosts, for all but the serial benchmark)."""

    def __call__(self, pty: str, port: int, ok_window: int = 1) -> AbstractAsyncContextManager[Server]: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benchmark", choices=["fanout", "serial", "slow", "storm", "all"])
    parser.add_argument("--with-octoprint", action="store_true", help="also run against OctoPrint 1.11.8")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="URL",
        help="benchmark a running server at URL (repeatable) instead of starting octotrio",
    )
    parser.add_argument("--api-key", help="API key of the --target servers")
    parser.add_argument(
        "--clients",
        type=_counts,
        default=[10, 200, 1000, 5000],
        metavar="N,N,...",
        help="fan-out client counts (default 10,200,1000,5000)",
    )
    parser.add_argument("--window", type=float, default=10.0, help="seconds recorded per fan-out case")
    parser.add_argument(
        "--client-procs", type=int, default=1, help="processes the clients are spread over (default 1)"
    )
    parser.add_argument("--storm-clients", type=int, default=1000, help="clients of the connect storm")
    parser.add_argument(
        "--storm-warmup",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds the server runs before the storm, so that history holds that long of"
        " temperatures at 10 a second (default 0: a fresh server)",
    )
    parser.add_argument("--serial-window", type=float, default=5.0, help="seconds counted per serial case")
    parser.add_argument(
        "--serial-ok-windows",
        type=_counts,
        default=list(SERIAL_OK_WINDOWS),
        metavar="N,N,...",
        help="ok windows each serial case runs at (default 1,4; an --octotrio-rev from before "
        "--ok-window takes only 1)",
    )
    parser.add_argument("--stall", type=float, default=60.0, help="seconds the slow client stops reading")
    parser.add_argument(
        "--octotrio-rev",
        metavar="REV",
        help="benchmark this git revision of octotrio (default: the working tree)",
    )
    parser.add_argument("--no-save", action="store_true", help="print only; write no JSON")
    return parser


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give positive whole numbers, e.g. 10,200")
    return counts


def servers(args: argparse.Namespace, logs: Path) -> list[tuple[str, ServerFactory]]:
    """The servers each benchmark runs against, in order: octotrio (or the targets), OctoPrint."""
    factories: list[tuple[str, ServerFactory]] = []
    if args.target:
        for url in args.target:
            factories.append((url, _external(url, args.api_key)))
    else:
        source = Path(args.octotrio_source)
        factories.append(
            (
                "octotrio",
                lambda pty, port, ok_window=1: run_octotrio(
                    source=source, port=port, serial=pty, log_path=logs / "octotrio.log", ok_window=ok_window
                ),
            )
        )
    if args.with_octoprint:
        if not octoprint_installed():
            install_octoprint()
        factories.append(
            (
                "OctoPrint",
                lambda pty, port, ok_window=1: run_octoprint(
                    serial=pty, port=port, log_path=logs / "octoprint.log", ok_window=ok_window
                ),
            )
        )
    return factories


def _external(url: str, api_key: str | None) -> ServerFactory:
    parts = urlsplit(url)

    @asynccontextmanager
    async def existing() -> AsyncIterator[Server]:
        yield Server(parts.hostname or url, parts.port or 80, api_key or "", None)

    return lambda _pty, _port, _ok_window=1: existing()


async def run_fanout(args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _name, factory in servers(args, logs):
        async with (
            run_firmware(report_interval=ACTIVITY_INTERVAL) as firmware,
            factory(firmware.path, 0) as server,
        ):
            for count in args.clients:
                row = await measure_fanout(server, count, args.window, args.client_procs)
                rows.append(row)
                print(_report.format_rows("fanout", [row]), flush=True)
                if row["connected"] < count:
                    break  # this server does not hold this many clients: larger counts are pointless
    return rows


async def run_slow(args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for _name, factory in servers(args, logs):
        async with (
            run_firmware(report_interval=ACTIVITY_INTERVAL) as firmware,
            factory(firmware.path, 0) as server,
        ):
            rows.append(await measure_slow(server, SLOW_READERS, args.stall))
            print(_report.format_rows("slow", rows[-1:]), flush=True)
    return rows


async def run_storm(args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if args.target:
        print("storm restarts the server, so it runs only against servers it starts; skipped for --target")
        return rows
    for name, factory in servers(args, logs):
        async with run_firmware(report_interval=ACTIVITY_INTERVAL) as firmware:
            rows += await measure_storm(
                name,
                args.storm_clients,
                partial(factory, firmware.path),
                processes=args.client_procs,
                warmup=args.storm_warmup,
            )
            print(_report.format_rows("storm", rows[-2:]), flush=True)
    return rows


async def run_serial(args: argparse.Namespace, logs: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if args.target:
        print("serial needs a server connected to the bench firmware; skipped for --target")
        return rows
    streams: list[tuple[str, StreamFactory]] = []
    for name, factory in servers(args, logs):
        over_rest = print_over_rest(partial(_with_any_port, factory))
        if name == "octotrio":
            async with run_firmware() as firmware, factory(firmware.path, 0) as server:
                if not await has_job_api(server):
                    name = "octotrio (link only)"
                    over_rest = link_driver(Path(args.octotrio_source))
        streams.append((name, over_rest))
    for baud in SERIAL_BAUDS:
        for ok_window in args.serial_ok_windows:
            for name, stream in streams:
                rows.append(await measure_serial(name, baud, ok_window, args.serial_window, stream))
                print(_report.format_rows("serial", rows[-1:]), flush=True)
    return rows


def _with_any_port(factory: ServerFactory, pty: str, ok_window: int) -> AbstractAsyncContextManager[Server]:
    return factory(pty, 0, ok_window)


BENCHMARKS = {"fanout": run_fanout, "serial": run_serial, "slow": run_slow, "storm": run_storm}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    logs = RESULTS_DIR / f"logs-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "started": stamp,
        "octotrio": args.octotrio_revision,
        "client_processes": args.client_procs,
        "benchmarks": {},
    }
    for name in names:
        rows = await BENCHMARKS[name](args, logs)
        results["benchmarks"][name] = {"rows": rows, "targets": _report.check_targets(name, rows)}
    return results


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-octotrio-") as exported:
        if args.octotrio_rev:
            args.octotrio_source = exported
            args.octotrio_revision = export_revision(args.octotrio_rev, Path(exported))
        else:
            args.octotrio_source = str(BENCH_DIR.parent)
            args.octotrio_revision = "working tree"
        results = trio.run(run, args, clock=MonotonicClock())
    print(_report.format_results(results))
    if not args.no_save:
        path = RESULTS_DIR / f"{args.benchmark}-{results['started']}.json"
        path.write_text(json.dumps(results, indent=1, default=str))
        print(f"results written to {path.relative_to(BENCH_DIR.parent)}")
