"""The job streamer and Z tracking (sans-IO): commands out of a G-code file read in chunks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from octotrio.printer import ZChanged
from octotrio.printer._job import (
    BUFFER_HIGH_WATER,
    MAX_LINE_LENGTH,
    READ_CHUNK_SIZE,
    JobStreamer,
    ZTracker,
    event_gcode,
)

GCODE = b"; sliced\nG28 ; home\n\n  G1 Z0.2 F600  \r\nG1 X10 Y10 E1\n;end\n"


def stream(data: bytes, cuts: list[int]) -> tuple[list[tuple[str, int]], JobStreamer]:
    """Feed ``data`` cut at ``cuts``; the commands with the filepos after each."""
    streamer = JobStreamer(len(data))
    taken: list[tuple[str, int]] = []
    start = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        streamer.feed(data[start:cut])
        start = max(start, cut)
        while (command := streamer.next_command()) is not None:
            taken.append((command, streamer.filepos))
    streamer.feed_eof()
    while (command := streamer.next_command()) is not None:
        taken.append((command, streamer.filepos))
    return taken, streamer


def test_comments_and_blank_lines_are_stripped_and_filepos_counts_bytes() -> None:
    taken, streamer = stream(GCODE, [])
    assert taken == [("G28", 20), ("G1 Z0.2 F600", 39), ("G1 X10 Y10 E1", 53)]
    # §9.4: at the end of the file the trailing comment counts as sent: progress reaches 100 %.
    assert streamer.exhausted
    assert streamer.filepos == len(GCODE)


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(GCODE)), max_size=8))
def test_chunking_does_not_change_the_commands(cuts: list[int]) -> None:
    assert stream(GCODE, cuts)[0] == stream(GCODE, [])[0]


def test_a_last_line_without_newline_and_an_empty_file() -> None:
    assert stream(b"G28\nM400", [])[0] == [("G28", 4), ("M400", 8)]
    taken, streamer = stream(b"", [])
    assert taken == []
    assert streamer.filepos == 0
    assert streamer.exhausted


def test_lines_that_cannot_be_sent_are_skipped_and_counted() -> None:
    overlong = b"G1 X1 " + b"Y" * MAX_LINE_LENGTH
    data = b"G28\n" + overlong + b"\nM117 caf\xc3\xa9\nN5 G1 X2*33\nG90\n"
    taken, streamer = stream(data, [7, 300])
    assert [command for command, _ in taken] == ["G28", "G90"]
    assert streamer.skipped == 3


def test_paused_streamer_holds_its_place() -> None:
    streamer = JobStreamer(len(GCODE))
    streamer.feed(GCODE)
    streamer.feed_eof()
    assert streamer.next_command() == "G28"
    streamer.paused = True
    assert streamer.next_command() is None
    assert streamer.filepos == 20
    streamer.paused = False
    assert streamer.next_command() == "G1 Z0.2 F600"


def test_memory_stays_bounded_for_a_large_file() -> None:
    streamer = JobStreamer(10**9)
    line = b"G1 X10.000 Y10.000 E0.12345\n"
    chunk = line * (READ_CHUNK_SIZE // len(line))
    fed = 0
    while streamer.wants_data:
        streamer.feed(chunk)
        fed += len(chunk)
    # The reader stops soon after the high-water mark, whatever the file's size.
    assert fed <= BUFFER_HIGH_WATER + 2 * len(chunk)
    assert streamer.next_command() == "G1 X10.000 Y10.000 E0.12345"


def test_z_changes_of_the_moves_sent() -> None:
    tracker = ZTracker()
    sent = ["G28", "G1 Z0.2 F600", "G1 X10 Z0.2", "G0 Z0.4", "G91", "G1 Z0.2", "G90", "G1 Z0.3", "M104 S200"]
    assert [tracker.observe(command) for command in sent] == [
        None,
        ZChanged(0.2, None),
        None,
        ZChanged(0.4, 0.2),
        None,
        ZChanged(0.6000000000000001, 0.4),
        None,
        # octoprint-push.md §9.3: also downwards.
        ZChanged(0.3, 0.6000000000000001),
        None,
    ]


def test_commands_with_events_of_their_own() -> None:
    # octoprint-push.md §9.3.
    assert [event_gcode(c) for c in ["G28 X", "g4 P100", "M112", "M600", "G1 X1", "M1050", "T0"]] == [
        "G28",
        "G4",
        "M112",
        "M600",
        None,
        None,
        None,
    ]
