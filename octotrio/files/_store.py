"""The data directory: uploaded G-code files, written atomically.

An upload streams into a hidden temporary file at the top of the data directory
(:meth:`FileStore.receive_upload`), is flushed and ``fsync``\\ ed, then renamed over the destination
(``os.replace``, atomic on POSIX: one file system) and the destination's folder is ``fsync``\\ ed:
a reader sees the old file or the new one, never half of one, and a failed or interrupted upload
leaves nothing behind (temporary files of a crash are removed at the next start). The destination
is chosen only at the end, because a form may name it after the file's data.

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
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

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

ANALYSIS_PIECE_BYTES = 64 * 1024
"""Bytes handed to the analysis at a time: it splits each piece into lines at once, and small
pieces keep those short-lived lines few."""

WRITE_BUFFER_BYTES = 256 * 1024
"""Bytes an upload gathers before they go to disk (and to the analysis) in one worker-thread
call: the most an upload holds in memory, yet only four thread hops per MiB (a hop costs well
under a millisecond; writes reach the page cache, the one ``fsync`` is at the end)."""


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


class Upload:
    """A file on its way into the store; get one from :meth:`FileStore.receive_upload`.

    :meth:`write` the data as it arrives, then :meth:`commit` it to its path. Until then it is
    a hidden temporary file that no listing shows and that is removed if the upload fails.
    """

    def __init__(self, store: FileStore, file: BinaryIO, temp_path: Path) -> None:
        self._store = store
        self._file = file
        self._temp_path = temp_path
        self._buffer = bytearray()
        self._analyzer = GcodeAnalyzer()
        self._committed = False

    async def write(self, data: bytes) -> None:
        """Append ``data``; it reaches the disk in batches of :data:`WRITE_BUFFER_BYTES`.

        On cancellation a batch being written completes first (worker threads are not abandoned)."""
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER_BYTES:
            await trio.to_thread.run_sync(self._flush)

    async def commit(self, path: str) -> StoredFile:
        """Make the upload the file at ``path`` (replacing any file there), analysed; the rename
        runs to its end even if the caller is cancelled meanwhile."""
        target = self._store.local_path(path)

        def finish() -> tuple[os.stat_result, dict[str, Any]]:
            self._flush()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._temp_path, 0o644)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._temp_path, target)
            self._committed = True
            _fsync_directory(target.parent)
            return target.stat(), self._analyzer.result()

        stat, analysis = await trio.to_thread.run_sync(finish)
        return self._store._remember(path, stat, analysis)

    def _flush(self) -> None:
        data, self._buffer = self._buffer, bytearray()
        self._file.write(data)
        with memoryview(data) as view:
            for start in range(0, len(view), ANALYSIS_PIECE_BYTES):
                self._analyzer.feed(bytes(view[start : start + ANALYSIS_PIECE_BYTES]))

    def _discard(self) -> None:
        self._file.close()
        if not self._committed:
            with contextlib.suppress(FileNotFoundError):
                self._temp_path.unlink()


class StoredFileReader:
    """A stored file open for reading, from :meth:`FileStore.open_file`; use it as an async
    context manager (``async with reader:``), which closes it."""

    def __init__(self, file: BinaryIO, stat: os.stat_result) -> None:
        self._file = file
        self.size = stat.st_size
        """Bytes in the file when it was opened."""
        self.mtime = stat.st_mtime
        """Its modification time (seconds since the epoch)."""

    async def read(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` more of the file, read in a worker thread; ``b""`` at its end."""
        return await trio.to_thread.run_sync(self._file.read, max_bytes)

    async def __aenter__(self) -> StoredFileReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._file.close()


class FileStore:
    """The ``local`` storage: G-code files under ``root``. Open one with :func:`open_file_store`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._analyses: OrderedDict[tuple[str, int, int], dict[str, Any]] = OrderedDict()

    def local_path(self, path: str) -> Path:
        """Where file ``path`` lives on disk (``path`` is validated: it cannot leave ``root``)."""
        return self.root / validate_file_path(path)

    @contextlib.asynccontextmanager
    async def receive_upload(self) -> AsyncIterator[Upload]:
        """An :class:`Upload` to stream a file into; commit it before the block ends, or it is
        removed on the way out (on an error or a cancellation too: the removal is shielded)."""
        fd, temp_name = await trio.to_thread.run_sync(
            partial(tempfile.mkstemp, dir=self.root, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        )
        upload = Upload(self, os.fdopen(fd, "wb"), Path(temp_name))
        try:
            yield upload
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(upload._discard)

    async def save(self, path: str, data: bytes) -> StoredFile:
        """Store ``data`` as ``path`` atomically (replacing any file there) and analyse it."""
        async with self.receive_upload() as upload:
            await upload.write(data)
            return await upload.commit(path)

    async def open_file(self, path: str) -> StoredFileReader:
        """The file at ``path``, open for reading (close it: ``async with``); ``FileNotFoundError``
        when there is no such file in the data directory (a symbolic link out of it counts as
        none). A file replaced while it is read stays the one opened: uploads replace files by
        renaming, never in place."""
        target = self.local_path(path)

        def open_regular_file() -> StoredFileReader:
            # is_file first: opening a FIFO would block until someone writes to it.
            if not target.is_file() or not target.resolve().is_relative_to(self.root.resolve()):
                raise FileNotFoundError(path)
            file = target.open("rb")
            return StoredFileReader(file, os.fstat(file.fileno()))

        try:
            return await trio.to_thread.run_sync(open_regular_file)
        except (NotADirectoryError, IsADirectoryError):
            raise FileNotFoundError(path) from None

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
