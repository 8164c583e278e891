"""``--format parquet``: streaming, size-sharded Parquet with a real ``Audio`` feature, and its card.

``E/data/<split>-0000i-of-0000n.parquet`` plus ``E/README.md``, the card of exactly what ``E`` holds
(with the plots, notices and provenance it refers to); ``--push REPO`` uploads the folder as it is.

Each row's audio file is read when its row is written and embedded as ``{"bytes", "path"}`` (the
storage of ``datasets.Audio``); the schema carries the ``huggingface`` metadata that makes
``load_dataset("parquet", ...)`` and the Hub see an ``Audio`` column. Rows go out in small row
groups and a shard is closed once its audio reaches the size limit, so memory does not grow with
the dataset. Shards are written under temporary names and renamed
``<split>-0000i-of-0000n.parquet`` once their number is known.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tagtune.files.resumable import ensure_dir
from tagtune.pipeline.exporters.base import ExportOptions, ExportResult, ExportRow
from tagtune.report import Reporter

ROW_GROUP = 64


def audio_schema(metadata_schema: Any) -> Any:
    """``audio`` (struct bytes/path) first, then the metadata columns (``file_name`` dropped)."""
    import pyarrow as pa

    from tagtune.pipeline.hf import features

    columns = [f for f in metadata_schema if f.name != "file_name"]
    schema = pa.schema([pa.field("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), *columns])
    feats = features(pa.schema(columns))
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": feats.to_dict()}})})


class ShardedWriter:
    """Writes one split's rows into ``<folder>/<split>-*.parquet`` shards of at most ``max_bytes`` audio."""

    def __init__(self, folder: Path, split: str, metadata_schema: Any, max_bytes: int):
        self.folder, self.split, self.max_bytes = Path(folder), split, max_bytes
        self.schema = audio_schema(metadata_schema)
        self.rows = self.bytes = 0
        self._shard_bytes = 0
        self._batch: list[dict[str, Any]] = []
        self._writer: Any = None
        self._tmp_files: list[Path] = []

    def add(self, row: dict[str, Any], audio: Path) -> None:
        data = Path(audio).read_bytes()
        self._batch.append({**row, "audio": {"bytes": data, "path": Path(audio).name}})
        self._shard_bytes += len(data)
        self.bytes += len(data)
        self.rows += 1
        if len(self._batch) >= ROW_GROUP or self._shard_bytes >= self.max_bytes:
            self._flush()
        if self._shard_bytes >= self.max_bytes:
            self._roll()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._batch:
            return
        if self._writer is None:
            tmp = self.folder / f".{self.split}-{len(self._tmp_files):05d}.parquet.tmp"
            self._tmp_files.append(tmp)
            self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")
        self._writer.write_table(pa.Table.from_pylist(self._batch, schema=self.schema), row_group_size=ROW_GROUP)
        self._batch = []

    def _roll(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._shard_bytes = 0

    def close(self) -> list[Path]:
        """Finish the last shard and give every shard its final name; returns them."""
        self._roll()
        n = len(self._tmp_files)
        final = [self.folder / f"{self.split}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for tmp, path in zip(self._tmp_files, final):
            tmp.replace(path)
        return final


class ParquetExporter:
    """Parquet shards with embedded audio, per split, and the card of the folder."""

    name = "parquet"
    publishable = True

    def write(self, ds_dir: Path, out: Path, rows: Iterator[ExportRow], options: ExportOptions,
              reporter: Reporter) -> ExportResult:
        data = ensure_dir(out / "data")
        for stale in data.glob("*.parquet"):  # an earlier export of this folder (it is ours: named by us)
            stale.unlink()
        writers: dict[str, ShardedWriter] = {}
        records: list[dict[str, Any]] = []
        with reporter.progress("parquet", unit="clips") as task:
            for row in rows:
                if row.split not in writers:
                    writers[row.split] = ShardedWriter(data, row.split, _row_schema(ds_dir, row.split), options.shard_bytes)
                writers[row.split].add(row.record, row.audio)
                records.append(row.record)
                task.advance(1)
            files = {s: w.close() for s, w in writers.items()}
        result = ExportResult(out, files, {s: w.rows for s, w in writers.items()})
        excluder = options.params.get("excluder")  # the leakage guard's counts are final once the rows are read
        _export_card(ds_dir, out, records, files, {s: (w.rows, w.bytes) for s, w in writers.items()},
                     options.params.get("card_load_path"), excluder.summary() if excluder else None)
        return result


def _row_schema(ds_dir: Path, split: str) -> Any:
    import pyarrow.parquet as pq

    from tagtune.pipeline.dataset import METADATA

    return pq.ParquetFile(ds_dir / split / METADATA).schema_arrow


def _export_card(ds_dir: Path, out: Path, records: list[dict[str, Any]], files: dict[str, list[Path]],
                 split_bytes: dict[str, tuple[int, int]], load_path: str | None, excluded: dict[str, Any] | None) -> None:
    """The card of an export folder, from exactly the rows written there (the dataset's card with its
    files section and configs rewritten), with the plots, notices and provenance it refers to."""
    from tagtune.pipeline.card import write_card, write_plots
    from tagtune.pipeline.dataset import read_provenance
    from tagtune.records.taxonomy import Taxonomy

    prov = read_provenance(ds_dir)
    if excluded:  # the export's own leakage guard
        prov = {**prov, "excluded": excluded}
    taxonomy = Taxonomy(prov["taxonomy"]) if prov.get("taxonomy") else None
    dataset_cfg = prov.get("dataset") or {}
    for name in ("NOTICE.md", "provenance.json"):
        if (ds_dir / name).is_file():
            shutil.copyfile(ds_dir / name, out / name)
    if taxonomy is None or not dataset_cfg:
        return
    plots = write_plots(records, taxonomy, out / "plots")
    config_paths = {s: [f"data/{s}-*.parquet"] for s in files}
    write_card(out, records, taxonomy, dataset_cfg, prov, plots, split_bytes, config_paths, load_path, embedded=True)
