"""``csv``: an export format (family ``exporters``) for ``tagtune dataset export --format csv``.

tagtune builds it as ``CsvExporter()`` and calls ``write(ds_dir, out, rows, options, reporter)``
with the dataset's rows already checked (ids unique, clips readable) and filtered by the leakage
guard. It writes, into ``out`` (a folder this export owns)::

    out/train.csv            id, caption, tags (joined by "|"), duration, file (relative to out)
    out/audio/train/<clip>   the clips, hard-linked (copied across file systems)

Its one setting comes from ``dataset export --option separator=';'`` (``options.params``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

from tagtune.files.resumable import atomic_write_text, link_or_copy
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.report import Reporter

COLUMNS = ("id", "caption", "tags", "duration", "file")


class CsvExporter:
    """One CSV manifest per split, the clips beside them."""

    name = "csv"  # what --format calls it and the default folder's name (export-csv)
    publishable = False  # --push uploads Parquet exports only

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        separator = str(options.params.get("separator", "|"))  # --option separator=...
        tables: dict[str, list[dict[str, object]]] = {}
        for row in rows:  # in split order; row.audio is the clip's absolute path
            file = f"audio/{row.split}/{row.audio.name}"
            link_or_copy(row.audio, out / file)  # atomic, and skipped when already there (a rerun)
            rec = row.record
            tables.setdefault(row.split, []).append({"id": rec["id"], "caption": rec.get("caption", ""),
                                                     "tags": separator.join(rec.get("tags") or []),
                                                     "duration": rec.get("duration"), "file": file})
        files = {}
        for split, table in tables.items():
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(table)
            files[split] = [atomic_write_text(out / f"{split}.csv", text.getvalue())]  # never half a file
        return ExportResult(out, files, {split: len(table) for split, table in tables.items()})
