"""Which file paths the store accepts.

Paths are relative to the data directory, use ``/`` between folders, and name G-code files
(``.gcode``, ``.gco``, ``.g``, as OctoPrint's ``machinecode`` type). Anything that could step out of
the data directory, hide a file or confuse a file system is refused with :class:`InvalidPath`,
whose message is meant for the client.
"""

from __future__ import annotations

GCODE_EXTENSIONS = (".gcode", ".gco", ".g")
"""OctoPrint's ``machinecode``/``gcode`` extensions."""

MAX_SEGMENT_BYTES = 255
"""Longest file or folder name: what ext4, XFS, APFS and NTFS allow."""

MAX_PATH_BYTES = 1024
"""Longest relative path: far beyond any real layout, well under PATH_MAX (4096) with the data dir."""


class InvalidPath(ValueError):
    """A path the store refuses; ``str()`` says why, in words fit for an API error body."""


def _check_segment(segment: str, path: str) -> None:
    if segment in ("", ".", ".."):
        raise InvalidPath(f"Invalid path {path!r}: empty, '.' or '..' segments are not allowed")
    if segment.startswith("."):
        # Hidden names are the store's own (temporary uploads); a client cannot create them.
        raise InvalidPath(f"Invalid path {path!r}: names must not start with '.'")
    if any(ord(c) < 0x20 or c in '\\:*?"<>|\x7f' for c in segment):
        raise InvalidPath(f'Invalid path {path!r}: control characters and \\:*?"<>| are not allowed')
    if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        raise InvalidPath(f"Invalid path {path!r}: a name is longer than {MAX_SEGMENT_BYTES} bytes")


def normalize_folder(folder: str) -> str:
    """A folder path as the store keeps it: no leading or trailing ``/``; ``""`` for the root."""
    stripped = folder.strip("/")
    if stripped:
        for segment in stripped.split("/"):
            _check_segment(segment, folder)
    return stripped


def is_gcode_name(name: str) -> bool:
    return name.lower().endswith(GCODE_EXTENSIONS)


def validate_file_path(path: str) -> str:
    """``path`` (already percent-decoded) as a safe relative G-code path, or :class:`InvalidPath`."""
    if path.startswith("/"):
        path = path.lstrip("/")
    if not path:
        raise InvalidPath("Invalid path '': a file name is needed")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath(f"Invalid path: longer than {MAX_PATH_BYTES} bytes")
    for segment in path.split("/"):
        _check_segment(segment, path)
    if not is_gcode_name(path):
        raise InvalidPath(f"Invalid path {path!r}: only {', '.join(GCODE_EXTENSIONS)} files are accepted")
    return path


def join_path(folder: str, name: str) -> str:
    """``name`` inside ``folder`` (both as the client sent them), validated."""
    folder = normalize_folder(folder)
    return validate_file_path(f"{folder}/{name}" if folder else name)
