"""Streaming, size-sharded Parquet writing with a real ``Audio`` feature (no ``datasets`` needed).

Each row's audio file is read when its row is written and embedded as ``{"bytes", "path"}`` (the
storage of ``datasets.Audio``); the schema carries the ``huggingface`` metadata that makes
``load_dataset("parquet", ...)`` and the Hub see an ``Audio`` column. Rows go out in small row
groups and a shard is closed once its audio reaches the size limit, so memory does not grow with
the dataset. Shards are written under temporary names and renamed
``<split>-0000i-of-0000n.parquet`` once their number is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
