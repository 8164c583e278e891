"""``--format jsonl``: ``E/<split>.jsonl`` (every column, ``file_name`` relative to ``E``) and ``E/audio/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tagtune.files.resumable import atomic_write_text, dumps_line, link_or_copy
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.report import Reporter


class JsonlExporter:
    """One JSON Lines file per split, the clips linked (or copied) beside them."""

    name = "jsonl"
    publishable = False

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        lines: dict[str, list[str]] = {}
        for row in rows:
            name = f"audio/{row.split}/{row.audio.name}"
            link_or_copy(row.audio, out / name)
            lines.setdefault(row.split, []).append(dumps_line({**row.record, "file_name": name}))
        files = {s: [atomic_write_text(out / f"{s}.jsonl", "".join(v))] for s, v in lines.items()}
        return ExportResult(out, files, {s: len(v) for s, v in lines.items()})
