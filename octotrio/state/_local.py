"""What the server itself tells the aggregator: file and selection changes made over REST.

The printer link reports through :mod:`octotrio.printer` events; these are the other input of the
fold. REST handlers hand them to :meth:`StateFeed.submit` before they drive the printer, so the
push events keep OctoPrint's order (``FileSelected`` before ``PrinterStateChanged`` STARTING, §9.7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from octotrio.printer import JobFile


@dataclass(frozen=True)
class FileUploaded:
    """A file was stored: ``FileAdded``, ``UpdatedFiles``, ``MetadataAnalysisStarted``, ``Upload``
    and ``MetadataAnalysisFinished`` with ``analysis`` (octoprint-push.md §9.5, §9.7)."""

    path: str
    name: str
    analysis: Mapping[str, Any]
    select: bool
    print: bool
    effective_select: bool
    effective_print: bool


@dataclass(frozen=True)
class FileRemoved:
    """A file was deleted: ``FileRemoved`` and ``UpdatedFiles``."""

    path: str
    name: str


@dataclass(frozen=True)
class FileSelected:
    """``file`` becomes the job, selected by ``user``; ``analysis`` gives its estimates."""

    file: JobFile
    user: str | None
    analysis: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class FileDeselected:
    """No file is selected any more (``FileDeselected`` when one was)."""


@dataclass(frozen=True)
class OffsetsChanged:
    """Temperature offsets were set (``offsets`` in ``current``, §8.4); merged into the known ones."""

    offsets: Mapping[str, float] = field(default_factory=dict)


LocalEvent = FileUploaded | FileRemoved | FileSelected | FileDeselected | OffsetsChanged
