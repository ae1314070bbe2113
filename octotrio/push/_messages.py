"""Server → client push messages, encoded as OctoPrint 1.11.8 sends them. Sans-IO.

Every message is a JSON object with exactly one key, ``{"<type>": <payload>}``. The parts of
``current`` that are the same for every client come pre-encoded in a :class:`Tick`; only
``serverTime`` and the accumulated items are per session.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from dataclasses import dataclass

from octotrio.auth import BUILTIN_PERMISSIONS
from octotrio.sockjs import SharedMessage
from octotrio.state import Accumulated, History, JSONObject, Tick, encode_json, encode_members

from ._subscription import Filter, filter_lines

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

    @functools.cached_property
    def connected_message(self) -> SharedMessage:
        """The encoded ``connected`` message: the same for every client, so encoded (and framed)
        once."""
        return SharedMessage(encode_message("connected", self.connected_payload()))

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


def encode_current(
    tick: Tick,
    accumulated: Accumulated,
    server_time: float,
    *,
    terminal: bool = True,
    logs: Filter = True,
    messages: Filter = True,
) -> str:
    """``{"current": {...}}`` in OctoPrint's key order, from a tick and one session's accumulation.

    ``logs`` and ``messages`` are there only with ``terminal`` (the MONITOR_TERMINAL permission,
    octoprint-push.md §3.4), filtered by the session's subscription. Only a session with a
    regular-expression filter decodes its lines; everyone else joins the shared encodings.
    """
    terminal_part = ""
    if terminal:
        log_lines = _filter_encoded(accumulated.logs, logs)
        if accumulated.missed and logs is not False:
            log_lines = [encode_json(DROPPED_MARKER.format(count=accumulated.missed)), *log_lines]
        message_lines = _filter_encoded(accumulated.messages, messages)
        terminal_part = f',"logs":[{",".join(log_lines)}],"messages":[{",".join(message_lines)}]'
    return (
        f'{{"current":{{{tick.head},"serverTime":{encode_json(server_time)},'
        f'"temps":[{",".join(accumulated.temps)}],{tick.tail}{terminal_part}}}}}'
    )


def _filter_encoded(encoded_lines: list[str], wanted: Filter) -> list[str]:
    if isinstance(wanted, bool):
        return encoded_lines if wanted else []
    return [line for line in encoded_lines if wanted.search(json.loads(line))]


def history_for(history: JSONObject, *, terminal: bool, logs: Filter, messages: Filter) -> JSONObject:
    """A ``history`` payload as one session may see it: without ``logs``/``messages`` unless it has
    MONITOR_TERMINAL (octotrio's fix of Q1: OctoPrint leaks them), else filtered by its subscription."""
    if not terminal:
        return {key: value for key, value in history.items() if key not in ("logs", "messages")}
    return {
        **history,
        "logs": filter_lines(history["logs"], logs),
        "messages": filter_lines(history["messages"], messages),
    }


def encode_history(
    history: History, server_time: float, *, terminal: bool, logs: Filter, messages: Filter
) -> str:
    """``{"history": {...}}`` for one session (see :func:`history_for`), ``serverTime`` last.

    The shared part is encoded once per state version and kind of session (permission and
    on/off filters); only a session with a regular-expression filter has its own encoded.
    """

    def select(payload: JSONObject) -> JSONObject:
        return history_for(payload, terminal=terminal, logs=logs, messages=messages)

    if isinstance(logs, bool) and isinstance(messages, bool):
        members = history.encoded_members((terminal, logs, messages), select)
    else:
        members = encode_members(select(history.payload))
    return f'{{"history":{{{members},"serverTime":{encode_json(server_time)}}}}}'


def reauth_required(reason: str) -> str:
    """``{"reauthRequired": {"reason": ...}}``: ``stale``, ``logout``, ``modified`` or ``removed`` (§3.2)."""
    return encode_message("reauthRequired", {"reason": reason})


def slicing_progress(
    slicer: str, source_location: str, source_path: str, dest_location: str, dest_path: str, progress: float
) -> JSONObject:
    """The ``slicingProgress`` payload (§3.6; octotrio has no slicer, so it never publishes one)."""
    return {
        "slicer": slicer,
        "source_location": source_location,
        "source_path": source_path,
        "dest_location": dest_location,
        "dest_path": dest_path,
        "progress": progress,
    }


def render_progress(progress: float) -> JSONObject:
    """The ``renderProgress`` payload (§3.6; octotrio renders no timelapses, so never published)."""
    return {"progress": progress}
