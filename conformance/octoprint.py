"""A real OctoPrint 1.11.8 on 127.0.0.1, offline, in its own virtualenv: the second implementation the
suite is proven on (tests/test_conformance_octoprint.py) and the benchmarks' comparison (bench/_servers.py).

The settings are those of shared/reference/octoprint-offline.md. ``python -m conformance.octoprint``
installs it if needed, starts it with its virtual printer and prints the URL and API key for
``octotrio conform``; Ctrl-C stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
VERSION = "1.11.8"
INSTALL_SCRIPT = REPO / "scripts" / "install-octoprint.sh"

INSTALL_TIMEOUT = 900.0
"""Seconds the installer gets: about 30 s here from a wheel cache, a few minutes from PyPI on a slow link."""
START_TIMEOUT = 90.0
"""Seconds OctoPrint gets to answer GET /api/version (5–15 s cold here; CI machines can be slower)."""
STOP_TIMEOUT = 10.0
"""Seconds OctoPrint gets to shut down after SIGTERM before it is killed."""
LOG_TAIL = 3000
"""Characters of OctoPrint's log quoted in a start failure."""


def venv() -> Path:
    """The OctoPrint virtualenv: ``$OCTOPRINT_VENV``, else the repository's gitignored ``.octoprint-venv``."""
    return Path(os.environ.get("OCTOPRINT_VENV") or REPO / ".octoprint-venv")


def executable() -> Path:
    return venv() / "bin" / "octoprint"


def installed() -> bool:
    return executable().exists()


def install() -> None:
    """Run scripts/install-octoprint.sh (idempotent; needs PyPI the first time). Raises
    ``subprocess.CalledProcessError`` or ``subprocess.TimeoutExpired`` (after ``INSTALL_TIMEOUT``)."""
    subprocess.run(["sh", str(INSTALL_SCRIPT), str(venv())], check=True, timeout=INSTALL_TIMEOUT)


def offline_config(api_key: str) -> dict[str, Any]:
    """config.yaml (JSON is YAML) with the offline settings of octoprint-offline.md, the virtual printer
    enabled (with its default injected resend errors) and the global API key ``api_key``."""
    return {
        "api": {"key": api_key},
        "server": {
            "firstRun": False,
            "onlineCheck": {"enabled": False},
            "pluginBlacklist": {"enabled": False},
            "pythonEolCheck": {"enabled": False},
        },
        "plugins": {
            "_disabled": [
                "announcements",
                "tracking",
                "errortracking",
                "softwareupdate",
                "pluginmanager",
                "discovery",
            ],
            "tracking": {"enabled": False},
            "errortracking": {"enabled": False},
            "health_check": {"disabled": ["python_eol", "octoprint_freshness"]},
            "virtual_printer": {"enabled": True},
        },
    }


def prepare_basedir(basedir: Path, config: dict[str, Any], admin_password: str) -> None:
    """Write ``config`` as basedir/config.yaml and add the user ``admin`` (ADMIN) with ``admin_password``."""
    basedir.mkdir(parents=True, exist_ok=True)
    (basedir / "config.yaml").write_text(json.dumps(config))
    add_user = ["user", "add", "admin", "--password", admin_password, "--admin"]
    subprocess.run(
        [str(executable()), "--basedir", str(basedir), *add_user],
        check=True,
        capture_output=True,
        timeout=START_TIMEOUT,
    )


def serve_command(basedir: Path, port: int) -> list[str]:
    command = [str(executable()), "--basedir", str(basedir), "serve"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if os.geteuid() == 0:
        command.append("--iknowwhatimdoing")  # as root OctoPrint refuses to start otherwise
    return command


@dataclass(frozen=True)
class OctoPrint:
    """A running OctoPrint: its URL, global API key, and the admin user's password."""

    url: str
    api_key: str
    admin_password: str
    log_path: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (OctoPrint needs a port number up front)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_octoprint(*, log_path: Path | None = None) -> Iterator[OctoPrint]:
    """OctoPrint (installed if missing) with a fresh offline basedir, ready to answer its API.

    Raises ``RuntimeError`` with the log's tail when it exits or stays silent for ``START_TIMEOUT``.
    On exit (also on an exception or Ctrl-C): SIGTERM to its process group, a kill after
    ``STOP_TIMEOUT``, and the basedir removed.
    """
    if not installed():
        install()
    api_key, password = secrets.token_hex(16), secrets.token_hex(12)
    basedir = Path(tempfile.mkdtemp(prefix="octoprint-"))
    log_path = log_path or basedir / "serve.log"
    port = free_port()
    prepare_basedir(basedir, offline_config(api_key), password)
    server = OctoPrint(f"http://127.0.0.1:{port}", api_key, password, log_path)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            serve_command(basedir, port), stdout=log, stderr=log, start_new_session=True
        )
    try:
        _wait_ready(process, server)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(basedir, ignore_errors=True)


def _wait_ready(process: subprocess.Popen[bytes], server: OctoPrint) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(headers={"X-Api-Key": server.api_key}, timeout=5) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"OctoPrint exited with {process.returncode}:\n{_tail(server.log_path)}")
            try:
                if http.get(f"{server.url}/api/version").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise RuntimeError(
        f"OctoPrint did not answer GET /api/version within {START_TIMEOUT:.0f} s:\n{_tail(server.log_path)}"
    )


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL:]
    except OSError as error:
        return f"(no log: {error})"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so OctoPrint is stopped and its basedir removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with running_octoprint() as server:
        print(f"OctoPrint {VERSION} at {server.url}")
        print(f"  octotrio conform {server.url} --api-key {server.api_key}")
        print(f"  (user admin, password {server.admin_password}; log {server.log_path}); Ctrl-C stops it")
        sys.stdout.flush()
        with suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
