"""The data directory: uploaded G-code files, written atomically.

Every write goes to a hidden temporary file in the destination's own folder, is flushed and
``fsync``\\ ed, then renamed over the destination (``os.replace``, atomic on POSIX) and the folder
is ``fsync``\\ ed: a reader sees the old file or the new one, never half of one, and a failed or
interrupted upload leaves nothing behind (temporary files of a crash are removed at the next start).

File-system calls run in worker threads (``trio.to_thread``) so a slow disk never stalls the
event loop. They are not abandoned on cancellation: a save that started completes or rolls back
before the cancellation is delivered, so no temporary file outlives its caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from ._analysis import GcodeAnalyzer
from ._paths import is_gcode_name, validate_file_path

TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".tmp"

ANALYSIS_CACHE_SIZE = 4096
"""Analyses kept in memory (a few hundred bytes each); older ones are recomputed when needed."""

MAX_LISTED_ENTRIES = 10_000
"""Files and folders a listing walks at most, so one huge data directory cannot make a huge answer."""

READ_CHUNK_BYTES = 1 << 20
"""Bytes read at a time when analysing a stored file: fast, yet a bounded amount of memory."""


@dataclass(frozen=True)
class StoredFile:
    """A G-code file in the store: ``path`` relative to the data directory, ``date`` its mtime."""

    path: str
    name: str
    size: int
    date: int
    analysis: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredFolder:
    """A folder in a listing, with what it holds."""

    path: str
    name: str
    children: list[StoredFile | StoredFolder]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(target: Path, data: bytes) -> os.stat_result:
    """Write ``data`` to ``target`` through a temporary file and a rename; nothing is left on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(target.parent)
    return target.stat()


def _analyse_file(target: Path) -> dict[str, Any]:
    analyzer = GcodeAnalyzer()
    with target.open("rb") as file:
        while chunk := file.read(READ_CHUNK_BYTES):
            analyzer.feed(chunk)
    return analyzer.result()


def _remove_stale_temporaries(root: Path) -> None:
    for temp in root.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


class FileStore:
    """The ``local`` storage: G-code files under ``root``. Open one with :func:`open_file_store`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._analyses: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()

    def local_path(self, path: str) -> Path:
        """Where file ``path`` lives on disk (``path`` is validated: it cannot leave ``root``)."""
        return self.root / validate_file_path(path)

    async def save(self, path: str, data: bytes) -> StoredFile:
        """Store ``data`` as ``path`` atomically (replacing any file there) and analyse it."""
        target = self.local_path(path)

        def write_and_analyse() -> tuple[os.stat_result, dict[str, Any]]:
            analyzer = GcodeAnalyzer()
            analyzer.feed(data)
            return _write_atomically(target, data), analyzer.result()

        stat, analysis = await trio.to_thread.run_sync(write_and_analyse)
        return self._remember(path, stat, analysis)

    async def get(self, path: str) -> StoredFile | None:
        """The file at ``path`` (with its analysis when already known), or None."""
        target = self.local_path(path)
        try:
            stat = await trio.to_thread.run_sync(target.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not target.is_file():
            return None
        return self._stored(path, stat)

    async def analyse(self, path: str) -> StoredFile | None:
        """The file at ``path`` with its analysis, computed now if needed; None when it is gone."""
        stored = await self.get(path)
        if stored is None or stored.analysis is not None:
            return stored
        target = self.local_path(path)
        try:
            analysis = await trio.to_thread.run_sync(_analyse_file, target)
            stat = await trio.to_thread.run_sync(target.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._remember(path, stat, analysis)

    async def remove(self, path: str) -> None:
        """Delete the file at ``path``; ``FileNotFoundError`` if there is none."""
        target = self.local_path(path)

        def unlink() -> None:
            target.unlink()
            _fsync_directory(target.parent)

        await trio.to_thread.run_sync(unlink)

    async def list_files(self) -> list[StoredFile | StoredFolder]:
        """Every G-code file and folder, sorted by name, at most :data:`MAX_LISTED_ENTRIES` entries."""
        return await trio.to_thread.run_sync(self._walk)

    async def usage(self) -> tuple[int, int]:
        """``(free, total)`` bytes of the file system holding the data directory."""
        usage = await trio.to_thread.run_sync(shutil.disk_usage, self.root)
        return usage.free, usage.total

    def _walk(self) -> list[StoredFile | StoredFolder]:
        budget = MAX_LISTED_ENTRIES

        def walk(directory: Path, prefix: str) -> list[StoredFile | StoredFolder]:
            nonlocal budget
            entries: list[StoredFile | StoredFolder] = []
            try:
                children = sorted(os.scandir(directory), key=lambda entry: entry.name)
            except OSError:
                return entries
            for child in children:
                if budget <= 0:
                    break
                if child.name.startswith("."):
                    continue  # temporary uploads and other hidden files are not the store's
                path = f"{prefix}{child.name}"
                if child.is_dir(follow_symlinks=False):
                    budget -= 1
                    entries.append(StoredFolder(path, child.name, walk(Path(child.path), f"{path}/")))
                elif child.is_file(follow_symlinks=False) and is_gcode_name(child.name):
                    budget -= 1
                    entries.append(self._stored(path, child.stat()))
            return entries

        return walk(self.root, "")

    def _key(self, path: str, stat: os.stat_result) -> tuple[str, int, int]:
        return (path, stat.st_mtime_ns, stat.st_size)

    def _stored(self, path: str, stat: os.stat_result) -> StoredFile:
        analysis = self._analyses.get(self._key(path, stat))
        return StoredFile(path, path.rsplit("/", 1)[-1], stat.st_size, int(stat.st_mtime), analysis)

    def _remember(self, path: str, stat: os.stat_result, analysis: dict[str, Any]) -> StoredFile:
        self._analyses[self._key(path, stat)] = analysis
        while len(self._analyses) > ANALYSIS_CACHE_SIZE:
            self._analyses.popitem(last=False)
        return StoredFile(path, path.rsplit("/", 1)[-1], stat.st_size, int(stat.st_mtime), analysis)


async def open_file_store(root: Path) -> FileStore:
    """The store in ``root``, created if needed; temporary files of an earlier crash are removed."""

    def prepare() -> None:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(root)

    await trio.to_thread.run_sync(prepare)
    return FileStore(root)


@contextlib.asynccontextmanager
async def temporary_file_store() -> AsyncIterator[FileStore]:
    """A store in a new temporary directory, removed with everything in it on exit (for tests and
    for servers run without a data directory). Removal is shielded from cancellation."""
    root = Path(await trio.to_thread.run_sync(tempfile.mkdtemp, "", "octotrio-data-"))
    try:
        yield FileStore(root)
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(shutil.rmtree, root, True)
