"""Server → client push messages, encoded as OctoPrint 1.11.8 sends them. Sans-IO.

Every message is a JSON object with exactly one key, ``{"<type>": <payload>}``. The parts of
``current`` that are the same for every client come pre-encoded in a :class:`Tick`; only
``serverTime`` and the accumulated items are per session.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import dataclass

from octotrio.state import Accumulated, JSONObject, Tick, encode_json

from ._permissions import BUILTIN_PERMISSIONS

API_VERSION = "1.11.8"
"""The OctoPrint version whose push API octotrio implements; clients use it for feature checks."""

DROPPED_MARKER = "[octotrio] {count} accumulated items were dropped: this client fell behind"
"""Log line put first in ``logs`` when a session fell so far behind that the hub's journals
dropped items it had not read yet (bounded memory instead of silent loss)."""


@dataclass(frozen=True)
class ServerInfo:
    """What ``connected`` says about the server."""

    octotrio_version: str
    debug: bool = False

    def connected_payload(self) -> JSONObject:
        config_hash = hashlib.md5(f"octotrio:{self.octotrio_version}".encode(), usedforsecurity=False)
        return {
            "version": API_VERSION,
            "display_version": f"{API_VERSION} (octotrio {self.octotrio_version})",
            "branch": None,
            "python_version": platform.python_version(),
            "plugin_hash": hashlib.md5(b"", usedforsecurity=False).hexdigest(),
            "config_hash": config_hash.hexdigest(),
            "debug": self.debug,
            "safe_mode": None,
            "online": True,
            "permissions": BUILTIN_PERMISSIONS,
        }


def encode_message(message_type: str, payload: object) -> str:
    return encode_json({message_type: payload})


def encode_current(tick: Tick, accumulated: Accumulated, server_time: float) -> str:
    """``{"current": {...}}`` in OctoPrint's key order, from a tick and one session's accumulation.

    ``logs`` and ``messages`` are always included: every client is authorised until the push
    API issue adds permissions (they will then need MONITOR_TERMINAL).
    """
    logs = accumulated.logs
    if accumulated.missed:
        logs = [encode_json(DROPPED_MARKER.format(count=accumulated.missed)), *logs]
    return (
        f'{{"current":{{{tick.head},"serverTime":{encode_json(server_time)},'
        f'"temps":[{",".join(accumulated.temps)}],{tick.tail},'
        f'"logs":[{",".join(logs)}],"messages":[{",".join(accumulated.messages)}]}}}}'
    )
