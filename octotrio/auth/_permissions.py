"""OctoPrint's built-in permissions, as listed in the ``connected`` message.

Keys, names and default groups follow OctoPrint 1.11.8 (octoprint-push.md §3.1); there is no
``apikey`` entry (removed in OctoPrint 1.4.0).
"""

from __future__ import annotations

from typing import Any


def _permission(
    key: str, name: str, description: str, groups: list[str], *, dangerous: bool = False
) -> dict[str, Any]:
    return {
        "key": key,
        "name": name,
        "dangerous": dangerous,
        "default_groups": groups,
        "description": description,
        "needs": {"role": [key.lower()]},
    }


_USERS = ["users"]
_USERS_READONLY = ["users", "readonly"]

BUILTIN_PERMISSIONS: list[dict[str, Any]] = [
    _permission("ADMIN", "Admin", "Admin is allowed to do everything", ["admins"], dangerous=True),
    _permission(
        "STATUS",
        "Status",
        "Allows to gather basic status information, e.g. job progress, printer state, temperatures, ... "
        "Mandatory for the default UI to work",
        _USERS_READONLY,
    ),
    _permission("CONNECTION", "Connection", "Allows to connect to and disconnect from a printer", _USERS),
    _permission("WEBCAM", "Webcam", "Allows to watch the webcam stream", _USERS_READONLY),
    _permission(
        "SYSTEM",
        "System",
        "Allows to run system commands, e.g. restart the server, shutdown or reboot the system, and to "
        "retrieve system and usage information",
        ["admins"],
        dangerous=True,
    ),
    _permission(
        "FILES_LIST", "File List", "Allows to retrieve a list of all uploaded files", _USERS_READONLY
    ),
    _permission("FILES_UPLOAD", "File Upload", "Allows users to upload new files", _USERS),
    _permission("FILES_DOWNLOAD", "File Download", "Allows users to download files", _USERS_READONLY),
    _permission("FILES_DELETE", "File Delete", "Allows users to delete files and folders", _USERS),
    _permission("FILES_SELECT", "File Select", "Allows to select a file for printing", _USERS),
    _permission("PRINT", "Print", "Allows to start, pause and cancel a print job", _USERS),
    _permission("GCODE_VIEWER", "GCODE viewer", "Allows access to the GCODE viewer", _USERS_READONLY),
    _permission(
        "MONITOR_TERMINAL",
        "Terminal",
        "Allows to watch the terminal but not to send commands to the printer from it",
        _USERS_READONLY,
    ),
    _permission(
        "CONTROL",
        "Control",
        "Allows to control the printer with the temperature controls, the control tab or the terminal",
        _USERS,
    ),
    _permission("SLICE", "Slice", "Allows to slice files", _USERS),
    _permission("TIMELAPSE_LIST", "Timelapse List", "Allows to list timelapse videos", _USERS_READONLY),
    _permission(
        "TIMELAPSE_DOWNLOAD", "Timelapse Download", "Allows to download timelapse videos", _USERS_READONLY
    ),
    _permission("TIMELAPSE_DELETE", "Timelapse Delete", "Allows to delete timelapse videos", _USERS),
    _permission(
        "TIMELAPSE_MANAGE_UNRENDERED",
        "Timelapse Manage Unrendered",
        "Allows to list, delete and render unrendered timelapses",
        _USERS,
    ),
    _permission("TIMELAPSE_ADMIN", "Timelapse Admin", "Allows to change the timelapse settings", _USERS),
    _permission("SETTINGS_READ", "Settings Access", "Allows to read non sensitive settings", _USERS),
    _permission(
        "SETTINGS",
        "Settings",
        "Allows to manage settings and also to read sensitive settings",
        ["admins"],
        dangerous=True,
    ),
]

PERMISSION_KEYS: frozenset[str] = frozenset(p["key"] for p in BUILTIN_PERMISSIONS)
"""Every permission key octotrio knows; a config naming another one is rejected."""

DANGEROUS_PERMISSIONS: frozenset[str] = frozenset(p["key"] for p in BUILTIN_PERMISSIONS if p["dangerous"])
"""Permissions OctoPrint never lets the guests group hold (octoprint-push.md §12.1)."""

GROUP_KEYS = ("admins", "users", "readonly", "guests")
"""OctoPrint's built-in groups: admins, users ("Operator"), readonly, and guests (anonymous)."""


def default_group_permissions() -> dict[str, frozenset[str]]:
    """Each built-in group's permissions as OctoPrint ships them (guests: none, §2.1)."""
    groups: dict[str, set[str]] = {key: set() for key in GROUP_KEYS}
    for permission in BUILTIN_PERMISSIONS:
        for group in permission["default_groups"]:
            groups[group].add(permission["key"])
    return {key: frozenset(value) for key, value in groups.items()}


def effective_permissions(granted: frozenset[str]) -> frozenset[str]:
    """ADMIN implies every permission, as in OctoPrint; anything else is what was granted."""
    return PERMISSION_KEYS if "ADMIN" in granted else granted
