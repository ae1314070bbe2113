"""``octotrio conform URL``: run the conformance suite against a server and report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the server, e.g. http://127.0.0.1:5000")
    parser.add_argument(
        "--api-key", default=os.environ.get("OCTOTRIO_API_KEY"), help="API key for passive login"
    )
    parser.add_argument("--user", help="log in with this user (and --password)")
    parser.add_argument("--password", help="password for --user")
    parser.add_argument(
        "--only", nargs="+", metavar="ID", default=[], help="report only these requirement ids"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    parser.add_argument("--junit", type=Path, metavar="PATH", help="also write the report as JUnit XML")
    parser.add_argument("--no-properties", action="store_true", help="skip the Hypothesis properties")


def main_from_args(args: argparse.Namespace) -> int:
    """Run, print the report, write the files asked for; the exit status is 1 when a MUST failed."""
    # Imported here so that `octotrio serve` does not load the suite's dependencies.
    import logging

    import trio

    from ._properties import run_properties
    from ._runner import Config, run_conformance

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the report
    config = Config(
        url=args.url.rstrip("/"),
        api_key=args.api_key,
        user=args.user,
        password=args.password,
        only=tuple(args.only),
        properties=not args.no_properties,
    )
    report = trio.run(lambda: run_conformance(config, properties=run_properties))
    print(report.to_text())
    report.write(args.json, args.junit)
    return report.exit_status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__)
    add_arguments(parser)
    sys.exit(main_from_args(parser.parse_args(argv)))
