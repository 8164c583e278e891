"""``--format webdataset``: tar shards of ``<key>.<audio suffix>`` and ``<key>.json`` members, side by side.

Written with the standard library's ``tarfile`` (deterministic member headers), rolled to a new
shard once ``max_bytes`` are written; read by ``webdataset.WebDataset`` and by stable-audio-tools'
``wds`` datasets (which want a ``prompt`` in the JSON). Keys hold no dots: WebDataset ends a key
at the first dot of a member name.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tagtune.files.ids import safe_id
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.report import Reporter


class TarShards:
    """``<folder>/<split>-000000.tar``, ``-000001.tar``... for one split."""

    def __init__(self, folder: Path, split: str, max_bytes: int):
        self.folder, self.split, self.max_bytes = Path(folder), split, max_bytes
        self.rows = 0
        self._size = 0
        self._tar: tarfile.TarFile | None = None
        self._files: list[Path] = []

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self._tar.addfile(info, io.BytesIO(data))
        self._size += len(data) + 1024

    def add(self, key: str, audio: Path, meta: dict[str, Any]) -> None:
        if self._tar is None or self._size >= self.max_bytes:
            self._next()
        self._member(f"{key}{Path(audio).suffix.lower()}", Path(audio).read_bytes())
        self._member(f"{key}.json", json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        self.rows += 1

    def _next(self) -> None:
        self._close_current()
        path = self.folder / f"{self.split}-{len(self._files):06d}.tar"
        tmp = path.with_name(f".{path.name}.tmp")
        self._files.append(path)
        self._tar = tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT)
        self._size = 0

    def _close_current(self) -> None:
        if self._tar is not None:
            self._tar.close()
            path = self._files[-1]
            path.with_name(f".{path.name}.tmp").replace(path)
            self._tar = None

    def close(self) -> list[Path]:
        self._close_current()
        return list(self._files)


def wds_key(row_id: str) -> str:
    """A WebDataset key (no dots: the key ends at the first dot of a member's name)."""
    return safe_id(row_id).replace(".", "_")


class WebDatasetExporter:
    """``E/<split>-000000.tar`` shards (what stable-audio-tools trains from): audio plus a JSON with ``prompt``."""

    name = "webdataset"
    publishable = False

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        shards: dict[str, TarShards] = {}
        for row in rows:
            rec = row.record
            if row.split not in shards:
                shards[row.split] = TarShards(out, row.split, options.shard_bytes)
            meta = {"prompt": rec.get("caption"), "seconds_total": rec.get("duration"), **rec}
            shards[row.split].add(wds_key(str(rec["id"])), row.audio, meta)
        files = {s: t.close() for s, t in shards.items()}
        return ExportResult(out, files, {s: t.rows for s, t in shards.items()})
