"""The data directory store: path rules, atomic writes, listing, and the G-code analysis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from octotrio.files import (
    GcodeAnalyzer,
    InvalidPath,
    StoredFile,
    StoredFolder,
    join_path,
    open_file_store,
    validate_file_path,
)

LAYERED = b"""; three layers of a 10 mm square
G28
G90
M82
G1 Z0.2 F300
G1 X0 Y0 F3000
G1 X10 Y0 E1.0 F1200
G1 X10 Y10 E2.0
G1 Z0.4
G1 X0 Y10 E3.0
G1 E2.0 ; retract
G1 E3.0 ; prime again
G1 X0 Y0 E4.0
G1 Z0.6
G1 X20 Y20 ; travel only
G4 P500
"""


@pytest.mark.parametrize(
    "path",
    [
        "../escape.gcode",
        "a/../../escape.gcode",
        "a//b.gcode",
        ".hidden.gcode",
        "a/./b.gcode",
        "model.stl",
        "model",
        "",
        "bad\x00name.gcode",
        "back\\slash.gcode",
        "x" * 300 + ".gcode",
    ],
)
def test_paths_that_could_escape_hide_or_are_not_gcode_are_refused(path: str) -> None:
    with pytest.raises(InvalidPath):
        validate_file_path(path)


def test_gcode_paths_are_normalised() -> None:
    assert validate_file_path("/folder/part.GCODE") == "folder/part.GCODE"
    assert validate_file_path("part.gco") == "part.gco"
    assert join_path("/sub/dir/", "part.g") == "sub/dir/part.g"
    assert join_path("", "part.gcode") == "part.gcode"


def test_analysis_follows_moves_layers_retractions_and_dwells() -> None:
    analyzer = GcodeAnalyzer()
    analyzer.feed(LAYERED)
    result = analyzer.result()
    assert result["printingArea"] == {
        "maxX": 10.0,
        "maxY": 10.0,
        "maxZ": 0.4,
        "minX": 0.0,
        "minY": 0.0,
        "minZ": 0.2,
    }
    assert result["travelArea"]["maxX"] == 20.0
    assert result["travelArea"]["maxZ"] == 0.6
    assert result["dimensions"] == {"depth": 10.0, "height": pytest.approx(0.2), "width": 10.0}
    # The retraction and the prime after it use no filament.
    assert result["filament"]["tool0"]["length"] == 4.0
    assert result["filament"]["tool0"]["volume"] > 0
    assert result["estimatedPrintTime"] > 0.5  # includes the 500 ms dwell
    assert list(result) == [
        "printingArea",
        "dimensions",
        "travelArea",
        "travelDimensions",
        "estimatedPrintTime",
        "filament",
    ]


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_analysis_does_not_depend_on_how_the_file_is_chunked(cuts: list[int]) -> None:
    whole = GcodeAnalyzer()
    whole.feed(LAYERED)
    chunked = GcodeAnalyzer()
    position = 0
    for cut in cuts:
        chunked.feed(LAYERED[position : position + cut])
        position += cut
    chunked.feed(LAYERED[position:])
    assert chunked.result() == whole.result()


def test_analysis_memory_is_bounded_without_newlines() -> None:
    analyzer = GcodeAnalyzer()
    for _ in range(100):
        analyzer.feed(b"G1 X1 " * 1000)
    assert len(analyzer._pending) <= 4096
    assert analyzer.result()["travelArea"]["maxX"] == 1.0


async def test_save_is_atomic_lists_and_removes(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path / "data")
    first = await store.save("sub/part.gcode", LAYERED)
    assert first == StoredFile("sub/part.gcode", "part.gcode", len(LAYERED), first.date, first.analysis)
    assert first.analysis is not None
    await store.save("sub/part.gcode", b"G1 X1\n")  # replaces it
    assert (tmp_path / "data" / "sub" / "part.gcode").read_bytes() == b"G1 X1\n"
    await store.save("top.gcode", b"G28\n")
    (tmp_path / "data" / "notes.txt").write_text("not G-code")
    listing = await store.list_files()
    assert [type(e).__name__ for e in listing] == ["StoredFolder", "StoredFile"]
    folder = listing[0]
    assert isinstance(folder, StoredFolder)
    assert [child.path for child in folder.children] == ["sub/part.gcode"]
    # Nothing but the stored files: no temporary file is left behind.
    assert sorted(p.name for p in (tmp_path / "data").rglob("*")) == [
        "notes.txt",
        "part.gcode",
        "sub",
        "top.gcode",
    ]
    await store.remove("top.gcode")
    assert await store.get("top.gcode") is None
    with pytest.raises(FileNotFoundError):
        await store.remove("top.gcode")


async def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    store = await open_file_store(tmp_path)
    await store.save("keep.gcode", b"G28\n")
    (tmp_path / "blocked.gcode").mkdir()  # a folder where the file should go: the rename fails
    with pytest.raises(IsADirectoryError):
        await store.save("blocked.gcode", b"G1 X1\n")
    assert sorted(os.listdir(tmp_path)) == ["blocked.gcode", "keep.gcode"]
    assert (tmp_path / "keep.gcode").read_bytes() == b"G28\n"


async def test_temporary_files_of_a_crash_are_removed_at_start(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".upload-abc123.tmp").write_bytes(b"half a fi")
    (tmp_path / "kept.gcode").write_bytes(b"G28\n")
    store = await open_file_store(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["kept.gcode", "sub"]
    assert os.listdir(tmp_path / "sub") == []
    analysed = await store.analyse("kept.gcode")
    assert analysed is not None
    assert analysed.analysis is not None
    assert (await store.get("kept.gcode")) == analysed  # the analysis is remembered
