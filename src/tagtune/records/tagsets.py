"""Training data of tag sets (optionally with captions), from a local file or the Hub.

Shared by ``vae train`` (tag sets) and ``caption finetune`` (tag/caption pairs). Rows are read by
the one reader of :mod:`tagtune.records.reader` and checked against a :class:`~tagtune.records.taxonomy.Taxonomy`:
unknown tags are counted (the most frequent reported), rows left without a known tag are dropped
with a count.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tagtune.errors import DependencyError, InputError
from tagtune.files.readers import iter_records, resolve_path
from tagtune.records.reader import Columns, ReadStats, read_rows
from tagtune.records.rows import TagSetRow
from tagtune.records.taxonomy import Taxonomy


@dataclass
class TagDataset:
    """The rows kept, the taxonomy they were checked against, and what reading found."""

    records: list[TagSetRow]
    taxonomy: Taxonomy
    stats: ReadStats

    @property
    def source(self) -> str:
        return self.stats.source

    def __len__(self) -> int:
        return len(self.records)

    def report(self, top: int = 5) -> list[str]:
        """Human-readable lines about what was read, dropped and not recognised."""
        return self.stats.report(top)

    def tag_sets(self) -> list[list[str]]:
        return [r.tags for r in self.records]


def split_records(records: list[Any], val_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """Seeded shuffle into (train, validation, test); train is never empty."""
    if val_fraction + test_fraction >= 1:
        raise InputError(f"bad split fractions: val={val_fraction}, test={test_fraction} (their sum must be < 1)")
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val = round(n * val_fraction)
    n_test = round(n * test_fraction)
    if n_val + n_test >= n:  # tiny datasets: keep at least one training row
        n_val = min(n_val, max(0, (n - 1) // 2))
        n_test = min(n_test, max(0, n - 1 - n_val))
    val = [records[i] for i in order[:n_val]]
    test = [records[i] for i in order[n_val:n_val + n_test]]
    train = [records[i] for i in order[n_val + n_test:]]
    return train, val, test


def _hub_rows(name: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import datasets
    except ImportError as exc:
        raise DependencyError(
            "Hub datasets need the `datasets` package", hint="pip install 'tagtune[hub]', or set data.path to a local file"
        ) from exc
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # noqa: BLE001 -- datasets raises many types for missing/offline datasets
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot load Hub dataset '{name}' (split '{split}'): {first[:200]}",
            hint="check the name and your network (HF_HUB_OFFLINE=1 means no downloads), or set data.path to a local file",
        ) from exc
    yield from enumerate(ds, start=1)


def columns_of(data_cfg: Mapping[str, Any]) -> Columns:
    """Where the ``data`` section says the tags and captions are."""
    cat_cols = data_cfg.get("category_columns")
    return Columns(tags=data_cfg.get("tags_column"), category_columns=dict(cat_cols) if cat_cols else None,
                   caption=data_cfg.get("caption_column"))


def load_tag_dataset(data_cfg: Mapping[str, Any], taxonomy: Taxonomy | None = None, caption: bool = False) -> TagDataset:
    """Read the tag dataset a ``data`` config section describes.

    Args:
        data_cfg: ``data.*`` keys: path or dataset_name/dataset_split, taxonomy_path, tags_column,
            category_columns, caption_column, limit.
        taxonomy: Use this taxonomy instead of ``data.taxonomy_path``.
        caption: Read (and require) the caption column too (fine-tuning pairs).
    """
    from tagtune.records.rows import CaptionRow

    taxonomy = taxonomy or Taxonomy.load(data_cfg["taxonomy_path"])
    if data_cfg.get("path"):
        source: Any = resolve_path(data_cfg["path"])
        rows: Any = iter_records(source)
    elif data_cfg.get("dataset_name"):
        name, split = data_cfg["dataset_name"], data_cfg.get("dataset_split") or "train"
        rows, source = _hub_rows(name, split), f"hf://{name}[{split}]"
    else:
        raise InputError("no data: set data.path (a local file) or data.dataset_name (a Hub dataset)")
    stats = ReadStats(str(source))
    records = list(read_rows(rows, source, CaptionRow if caption else TagSetRow, taxonomy, columns_of(data_cfg),
                             unknown="drop", empty="drop", unique_ids=False, limit=data_cfg.get("limit"), stats=stats))
    return TagDataset(records, taxonomy, stats)
