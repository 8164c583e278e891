"""Hugging Face conventions shared by the dataset folder and the exports: features, sizes, card data.

The features of a dataset are derived from its rows with pyarrow, the way the ``json`` and
``audiofolder`` builders of ``datasets`` infer them, with two fixes that keep every split loadable
alike: a column that is null (or an empty list or mapping) everywhere becomes text, and every row is given
every column (null where it has none), so no split infers a narrower type than another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SIZE_CATEGORIES = ("n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M", "100M<n<1B",
                   "1B<n<10B", "10B<n<100B", "100B<n<1T", "n>1T")  # the Hub's buckets, in order


def size_category(n: int) -> str:
    """The Hub's size bucket for ``n`` rows (``n<1K``, ``1K<n<10K``, ...)."""
    bucket = 0
    while bucket < len(SIZE_CATEGORIES) - 1 and n >= 1000 * 10**bucket:
        bucket += 1
    return SIZE_CATEGORIES[bucket]


def _text_for_null(kind: Any) -> Any:
    import pyarrow as pa

    if pa.types.is_null(kind):
        return pa.string()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(_text_for_null(kind.value_type))
    if pa.types.is_struct(kind):
        if kind.num_fields == 0:  # {} everywhere (e.g. a backend with no generation settings): Parquet has no empty struct
            return pa.string()
        return pa.struct([pa.field(f.name, _text_for_null(f.type)) for f in kind])
    return kind


def _columns(records: Sequence[Mapping[str, Any]], drop: set[str]) -> list[str]:
    """Every key of any record, each placed after the key it follows where it first appears.

    ``pa.Table.from_pylist`` takes its columns from the first record alone, and rows leave empty
    optional fields out: a dataset whose first row is not a pair member would lose ``pair_id``."""
    order: list[str] = []
    for rec in records:
        at = 0
        for key in rec:
            if key in drop:
                continue
            if key in order:
                at = order.index(key) + 1
            else:
                order.insert(at, key)
                at += 1
    return order


def arrow_schema(records: Sequence[Mapping[str, Any]], drop: Iterable[str] = ()) -> Any:
    """The pyarrow schema of all records together (nulls as text), without the ``drop`` columns."""
    import pyarrow as pa

    keys = _columns(records, set(drop))
    table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records])
    return pa.schema([pa.field(f.name, _text_for_null(f.type)) for f in table.schema])


def _conform(value: Any, kind: Any) -> Any:
    import pyarrow as pa

    if value is None:
        return None
    if pa.types.is_struct(kind) and isinstance(value, Mapping):
        return {f.name: _conform(value.get(f.name), f.type) for f in kind}
    if pa.types.is_list(kind) and isinstance(value, list):
        return [_conform(v, kind.value_type) for v in value]
    if isinstance(value, Mapping) and pa.types.is_string(kind):  # an empty mapping in a column typed as text
        return json.dumps(value, sort_keys=True) if value else None
    return value


def conform(record: Mapping[str, Any], schema: Any, keep: Iterable[str] = ()) -> dict[str, Any]:
    """The record with every column of ``schema`` (null where missing, nested too), in schema order;
    ``keep`` columns (e.g. ``file_name``) go first, unchanged."""
    out = {k: record[k] for k in keep if k in record}
    out.update({f.name: _conform(record.get(f.name), f.type) for f in schema})
    return out


def features(schema: Any, audio: str | None = "audio") -> Any:
    """``datasets.Features``: an ``Audio`` column first (when named), then the schema's columns."""
    import datasets

    feats = datasets.Features.from_arrow_schema(schema)
    return datasets.Features({audio: datasets.Audio(), **feats}) if audio else feats


def dataset_info(card_data: Any, feats: Any, splits: Mapping[str, tuple[int, int]]) -> None:
    """Fill ``card_data.dataset_info`` (features, splits with rows and bytes) in ``datasets``' own syntax."""
    import datasets

    info = datasets.DatasetInfo(
        features=feats,
        splits=datasets.SplitDict({name: datasets.SplitInfo(name, num_bytes=nbytes, num_examples=rows)
                                   for name, (rows, nbytes) in splits.items()}),
        dataset_size=sum(nbytes for _, nbytes in splits.values()),
    )
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)


def ffmpeg_available() -> bool:
    """Whether FFmpeg's shared libraries can be found (torchcodec, and so ``datasets`` >= 4, decodes audio with them)."""
    import ctypes.util

    return ctypes.util.find_library("avutil") is not None


def without_ffmpeg(load_path: str, splits: Sequence[str], embedded: bool) -> str:
    """How to read the dataset where torchcodec cannot load (no FFmpeg): the card's words and code."""
    if embedded:  # a Parquet export: the audio bytes are in the rows
        return ("Without FFmpeg's libraries (torchcodec cannot load), read the bytes yourself:\n\n```python\n"
                "import io, soundfile\nfrom datasets import Audio, load_dataset\n\n"
                f'ds = load_dataset("{load_path}").cast_column("audio", Audio(decode=False))\n'
                'audio, rate = soundfile.read(io.BytesIO(ds["train"][0]["audio"]["bytes"]))\n```')
    files = ", ".join(f'"{s}": "{load_path}/{s}/metadata.parquet"' for s in splits)
    first = splits[0] if splits else "train"
    return ("Without FFmpeg's libraries (torchcodec cannot load), load the metadata and open each clip with "
            "soundfile:\n\n```python\nimport soundfile\nfrom datasets import load_dataset\n\n"
            f"ds = load_dataset(\"parquet\", data_files={{{files}}})\n"
            f'row = ds["{first}"][0]\naudio, rate = soundfile.read(f"{load_path}/{first}/{{row[\'file_name\']}}")\n```')
