"""What every export format is: the ``Exporter`` Protocol, its family, and what an export returns.

A format is a class built with no arguments whose :meth:`Exporter.write` streams the dataset's
rows (:class:`ExportRow`, already checked and filtered by the leakage guard) into its own folder
and returns an :class:`ExportResult`. ``dataset export --format NAME`` finds it through
:data:`EXPORTERS`: a built-in name, ``package.module:Class``, or an entry point of the group
``tagtune.exporters`` (see docs/extending.md). Capabilities: ``publishable`` (``--push`` uploads
the folder to the Hub as it is).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tagtune.plugins import Family
from tagtune.report import Reporter


@dataclass(frozen=True)
class ExportRow:
    """One dataset row to export: its split, its record (every column) and its audio file."""

    split: str
    record: dict[str, Any]
    audio: Path


@dataclass(frozen=True)
class ExportOptions:
    """Settings of one export: the largest shard (bytes of audio) and format-specific ``params``."""

    shard_bytes: int
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ExportResult:
    """What an export wrote: files and rows per split (a format may name its own groups)."""

    out_dir: Path
    files: dict[str, list[Path]]
    rows: dict[str, int]
    excluded: int = 0
    pushed_to: str | None = None


class Exporter(Protocol):
    """An export format. Built as ``Exporter()``; ``name`` is what ``--format`` calls it.

    Attributes:
        name: The format's name.
        publishable: Whether ``--push`` may upload the written folder to the Hub.
    """

    name: str
    publishable: bool

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        """Write ``rows`` (in split order) into ``out``, a folder this export owns."""
        ...


EXPORTERS = Family(
    name="exporters", what="export format", protocol=Exporter, key="--format",
    builtins={
        "parquet": "tagtune.pipeline.exporters.parquet:ParquetExporter",
        "jsonl": "tagtune.pipeline.exporters.jsonl:JsonlExporter",
        "audiocraft": "tagtune.pipeline.exporters.audiocraft:AudiocraftExporter",
        "webdataset": "tagtune.pipeline.exporters.webdataset:WebDatasetExporter",
        "concepts": "tagtune.pipeline.exporters.concepts:ConceptsExporter",
    },
)
