"""SD card prints on the host side: the firmware's SD lines (sans-IO), the choice between SD status
autoreport and polling, and the link driving an SD print against a scripted firmware on a real pty
(marlin-serial.md §4–§7, §10.3)."""

from __future__ import annotations

import itertools

import pytest
import trio
import trio.testing

from octotrio.printer import (
    CommState,
    JobCancelled,
    JobFile,
    JobFinished,
    JobPaused,
    JobProgress,
    JobStarted,
    Position,
    PrinterLink,
    PrinterNotOperational,
    SdFile,
    SdFileSelected,
    SdFilesListed,
    SdStateChanged,
    StateChanged,
)
from octotrio.printer._sdcard import (
    MAX_SD_FILES,
    SdCard,
    SdDone,
    SdListed,
    SdOpened,
    SdOpenFailed,
    SdProgress,
    SdReady,
    SdStatusReporting,
)

from .test_printer_link import BANNER, FIRMWARE_NAME, ScriptedFirmware, running_link

# ---------------------------------------------------------------------------------------------
# The firmware's SD lines, sans-IO (§7).


def feed(card: SdCard, *lines: str) -> list[object]:
    return [report for line in lines if (report := card.receive_line(line)) is not None]


def test_the_card_is_ready_once_reported_and_gone_after_an_init_failure() -> None:
    card = SdCard()
    assert feed(card, "start", "Marlin: Virtual Marlin!", "SD card ok") == [SdReady(True)]
    # Marlin prefixes it with "echo:"; a repetition changes nothing.
    assert feed(card, "echo:SD card ok") == []
    assert feed(card, "Begin file list", "CUBE.GCO 1234", "End file list") == [
        SdListed((SdFile("CUBE.GCO", "CUBE.GCO", 1234),))
    ]
    assert feed(card, "echo:SD init fail") == [SdReady(False)]
    assert card.files == ()
    assert feed(card, "SD card ok") == [SdReady(True)]
    assert card.release() == SdReady(False)
    assert card.release() is None


def test_file_lists_with_long_names_timestamps_and_folders() -> None:
    card = SdCard()
    listed = feed(
        card,
        "Begin file list",
        "CUBE.GCO 1234",
        'BENCHY~1.GCO 52000 "3D Benchy.gcode"',  # M20 L, quoted
        "CALIBR~1.GCO 800 0x5a6b3c20 Calibration cube.gcode",  # M20 T L
        "/PARTS/GEAR.GCO 99",  # a file in a folder
        "not a file entry",
        "SD printing byte 5/10",  # not an entry: reported as what it is
        "End file list",
    )
    assert listed == [
        SdProgress(5, 10),
        SdListed(
            (
                SdFile("CUBE.GCO", "CUBE.GCO", 1234),
                SdFile("BENCHY~1.GCO", "3D Benchy.gcode", 52000),
                SdFile("CALIBR~1.GCO", "Calibration cube.gcode", 800),
                SdFile("PARTS/GEAR.GCO", "PARTS/GEAR.GCO", 99),
            )
        ),
    ]


def test_a_file_list_is_bounded_and_starts_afresh_if_its_end_was_lost() -> None:
    card = SdCard()
    entries = [f"F{i}.GCO 1" for i in range(MAX_SD_FILES + 10)]
    (listed,) = feed(card, "Begin file list", *entries, "End file list")
    assert isinstance(listed, SdListed)
    assert len(listed.files) == MAX_SD_FILES
    assert feed(card, "Begin file list", "A.GCO 1", "Begin file list", "B.GCO 2", "End file list") == [
        SdListed((SdFile("B.GCO", "B.GCO", 2),))
    ]


def test_select_progress_and_end_of_an_sd_print() -> None:
    card = SdCard()
    assert feed(card, "File opened: cube.gco Size: 1234", "File selected") == [SdOpened("cube.gco", 1234)]
    assert feed(card, "open failed, File: nope.gco.") == [SdOpenFailed()]
    assert feed(card, "Not SD printing", "SD printing byte 617/1234") == [SdProgress(617, 1234)]
    assert feed(card, "Done printing file") == [SdDone()]
    # "File selected" without "File opened" before it says nothing about which file.
    assert feed(card, "File selected") == []


def test_autoreport_when_offered_else_polling() -> None:
    # §5: AUTOREPORT_SD_STATUS → M27 S1 while the print runs; otherwise the host polls M27.
    offered = SdStatusReporting({"AUTOREPORT_SD_STATUS": True, "AUTOREPORT_TEMP": True})
    assert offered.autoreport
    assert (offered.start(), offered.stop()) == (["M27 S1"], ["M27 S0"])
    for capabilities in ({}, {"AUTOREPORT_SD_STATUS": False}):
        polled = SdStatusReporting(capabilities)
        assert not polled.autoreport
        assert (polled.start(), polled.stop()) == ([], [])


# ---------------------------------------------------------------------------------------------
# The link against a scripted firmware with an SD card.

SIZE = 1234
CUBE = JobFile("cube.gco", "cube.gco", "sdcard", SIZE)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Real pty I/O: jump only after 10 ms without any task runnable (style.md rule 11).
    return trio.testing.MockClock(autojump_threshold=0.01)


async def next_command(firmware: ScriptedFirmware) -> str:
    """The next line the host sent, answering hellos the jumping clock made it repeat."""
    while (line := await firmware.receive()) == "N0 M110 N0*125":
        await firmware.say("ok")
    return line


async def expect(firmware: ScriptedFirmware, *commands: str) -> None:
    """The host sends ``commands`` in order; each gets its ok."""
    for command in commands:
        assert await next_command(firmware) == command
        await firmware.say("ok")


async def nothing_sent_for(firmware: ScriptedFirmware, seconds: float) -> bool:
    with trio.move_on_after(seconds):
        await next_command(firmware)
        return False
    return True


async def connect_with_card(firmware: ScriptedFirmware, *capabilities: str, listing: str = "M20") -> None:
    """§4: the banner says "SD card ok"; after M115 and M155 the host asks for the file list."""
    await firmware.say(*BANNER, "SD card ok")
    assert await firmware.receive() == "N0 M110 N0*125"
    await firmware.say("ok")
    assert await firmware.receive() == "N1 M115*39"
    await firmware.say(FIRMWARE_NAME, "Cap:AUTOREPORT_TEMP:1", *capabilities, "ok")
    await expect(firmware, "M155 S2")
    assert await next_command(firmware) == listing
    await firmware.say("Begin file list", "CUBE.GCO 1234", "End file list", "ok")


async def select_and_start(link: PrinterLink, firmware: ScriptedFirmware, *reporting: str) -> None:
    link.select_sd_file("cube.gco", print_after=True, user="alice")
    assert await next_command(firmware) == "M23 cube.gco"
    await firmware.say(f"File opened: cube.gco Size: {SIZE}", "File selected", "ok")
    await expect(firmware, "M26 S0", "M24", *reporting)


async def test_an_sd_print_with_autoreport(clock: trio.testing.MockClock) -> None:
    async with running_link(hang_guard=60.0) as (link, firmware, log, nursery):
        await connect_with_card(firmware, "Cap:AUTOREPORT_SD_STATUS:1")
        await select_and_start(link, firmware, "M27 S1")
        # The firmware reports by itself: the host polls nothing.
        assert await nothing_sent_for(firmware, 5.0)
        await firmware.say(f"SD printing byte 617/{SIZE}")
        await log.wait_for(JobProgress)
        await firmware.say(f"SD printing byte {SIZE}/{SIZE}", "Done printing file")
        # §10.4: M400 on entering Finishing; the reports are switched off first.
        await expect(firmware, "M27 S0", "M400")
        await log.wait_for(JobFinished)
        await log.wait_for(StateChanged)
        nursery.cancel_scope.cancel()
    log.drain()
    states = [e for e in log.states() if not isinstance(e, JobProgress)]
    # The banner's "SD card ok" came before the firmware answered the hello.
    assert SdStateChanged(True) in states[: states.index(StateChanged(CommState.OPERATIONAL))]
    start = states.index(SdFilesListed((SdFile("CUBE.GCO", "CUBE.GCO", SIZE),)))
    finished = next(e for e in states if isinstance(e, JobFinished))
    assert states[start : states.index(finished) + 2] == [
        SdFilesListed((SdFile("CUBE.GCO", "CUBE.GCO", SIZE),)),
        SdFileSelected(CUBE, "alice"),
        StateChanged(CommState.STARTING),
        JobStarted(CUBE),
        StateChanged(CommState.PRINTING),
        StateChanged(CommState.FINISHING),
        finished,
        StateChanged(CommState.OPERATIONAL),
    ]
    progress = [e.filepos for e in log.events if isinstance(e, JobProgress)]
    assert progress == [617, SIZE]


async def test_without_autoreport_m27_is_polled_every_second_while_printing(
    clock: trio.testing.MockClock,
) -> None:
    async with running_link(hang_guard=60.0) as (link, firmware, log, nursery):
        await connect_with_card(firmware)
        await select_and_start(link, firmware)
        polls: list[float] = []
        for position in (100, 200, 300):
            assert await next_command(firmware) == "M27"
            polls.append(trio.current_time())
            await firmware.say(f"SD printing byte {position}/{SIZE}", "ok")
        # §10.3: the SD status poll interval is 1 s.
        assert [round(b - a, 1) for a, b in itertools.pairwise(polls)] == [1.0, 1.0]

        # Pause: M25, then M400 and M114 for the position (§10.4); no polls while paused.
        link.pause()
        await expect(firmware, "M25", "M400")
        assert await next_command(firmware) == "M114"
        await firmware.say("ok X:10.00 Y:20.00 Z:0.60 E:5.00 Count: A:1000 B:2000 C:60")
        paused = await log.wait_for(JobPaused)
        assert paused == JobPaused(Position(10.0, 20.0, 0.6, 5.0, 0), 300)
        assert await log.wait_for(StateChanged) == StateChanged(CommState.PAUSED)
        assert await nothing_sent_for(firmware, 5.0)

        # Cancel: M108, OctoPrint's SD cancel (M25, M26 S0), then the after-cancel script.
        link.cancel()
        await expect(firmware, "M108", "M25", "M26 S0", "M84", "M104 T0 S0", "M140 S0", "M106 S0")
        cancelled = await log.wait_for(JobCancelled)
        assert isinstance(cancelled, JobCancelled)
        assert cancelled.filepos == 300
        assert await log.wait_for(StateChanged) == StateChanged(CommState.OPERATIONAL)
        assert await nothing_sent_for(firmware, 5.0)
        nursery.cancel_scope.cancel()


async def test_firmware_with_extended_m20_is_asked_for_long_names() -> None:
    async with running_link() as (link, firmware, log, nursery):
        # §6: EXTENDED_M20 → M20 L, on connect and on every refresh.
        await connect_with_card(firmware, "Cap:EXTENDED_M20:1", listing="M20 L")
        await log.wait_for(SdFilesListed)
        link.refresh_sd()
        assert await next_command(firmware) == "M20 L"
        await firmware.say("Begin file list", 'CUBE.GCO 1234 "Cube model.gcode"', "End file list", "ok")
        assert await log.wait_for(SdFilesListed) == SdFilesListed(
            (SdFile("CUBE.GCO", "Cube model.gcode", SIZE),)
        )
        nursery.cancel_scope.cancel()


async def test_sd_commands_without_a_card_a_card_that_comes_and_a_file_that_cannot_be_opened() -> None:
    async with running_link() as (link, firmware, _log, nursery):
        await firmware.handshake()
        await expect(firmware, "M155 S2")
        await trio.testing.wait_all_tasks_blocked()
        # No "SD card ok" in this banner: nothing to select, nothing listed on connect.
        with pytest.raises(PrinterNotOperational, match="SD card is not ready"):
            link.select_sd_file("cube.gco")
        with pytest.raises(PrinterNotOperational, match="SD card is not ready"):
            link.start_sd_print()
        link.init_sd()
        await expect(firmware, "M21")
        await firmware.say("SD card ok")
        assert await next_command(firmware) == "M20"
        await firmware.say("Begin file list", "End file list", "ok")
        link.select_sd_file("cube.gco")
        assert await next_command(firmware) == "M23 cube.gco"
        await firmware.say("open failed, File: cube.gco.", "ok")
        with pytest.raises(PrinterNotOperational, match="No file selected"):
            link.start_sd_print()
        await link.release_sd()
        assert await next_command(firmware) == "M22"
        with pytest.raises(PrinterNotOperational, match="SD card is not ready"):
            link.select_sd_file("cube.gco")
        nursery.cancel_scope.cancel()
