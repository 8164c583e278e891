"""Tag sets for the VAE: read the ``data`` config, split it, encode it, and feed Lightning.

Reading goes through :func:`tagtune.records.tagsets.load_tag_dataset` (the one row reader of :mod:`tagtune.records.reader`), so every supported file type and
tag-column layout (list, comma string, JSON / Python-literal list string, per-category columns)
works here, and unknown tags / empty rows are reported the same way in every stage. Batches are
slices of one in-memory tensor: the whole dataset is a few hundred kilobytes, and a plain
index-shuffling loader keeps Lightning's per-batch cost to the model's own compute.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tagtune.config.sections import TagData
from tagtune.config.typed import to_dict
from tagtune.errors import InputError
from tagtune.records.tagsets import TagDataset, load_tag_dataset, split_records
from tagtune.records.taxonomy import Taxonomy


@dataclass
class VAEData:
    """The encoded splits (``(n, T)`` float32 multi-hot matrices) and where they came from."""

    taxonomy: Taxonomy
    dataset: TagDataset
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    report: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        sizes = self.train.sum(axis=1)
        return {
            "source": self.dataset.source,
            "rows_read": self.dataset.stats.total,
            "rows_kept": len(self.dataset),
            "rows_dropped": self.dataset.stats.dropped,
            "unknown_tag_uses": int(sum(self.dataset.stats.unknown_tags.values())),
            "top_unknown_tags": dict(self.dataset.stats.unknown_tags.most_common(5)),
            "train": int(len(self.train)),
            "val": int(len(self.val)),
            "test": int(len(self.test)),
            "num_tags": len(self.taxonomy),
            "train_mean_set_size": float(sizes.mean()) if len(sizes) else 0.0,
            "train_max_set_size": int(sizes.max()) if len(sizes) else 0,
            "train_tag_counts": {t: int(c) for t, c in zip(self.taxonomy.tags, self.train.sum(axis=0), strict=True)},
            "train_rule_violations": int((~self.taxonomy.rule_mask(self.train)).sum()) if self.taxonomy.rules else 0,
            "report": list(self.report),
        }


def load_vae_data(data_cfg: TagData, taxonomy: Taxonomy | None = None) -> VAEData:
    """Read and split the tag sets the ``data`` section describes.

    Raises:
        InputError: Unreadable data, a missing tag column (listing the available ones), or no
            training rows left after the split.
    """
    taxonomy = taxonomy or Taxonomy.load(data_cfg.taxonomy_path)
    dataset = load_tag_dataset(to_dict(data_cfg), taxonomy)
    if len(dataset) == 0:
        common = ", ".join(f"'{t}' x{n}" for t, n in dataset.stats.unknown_tags.most_common(5))
        raise InputError(
            f"none of the {dataset.stats.total} rows has a tag from the taxonomy"
            + (f" (unknown tags: {common})" if common else ""),
            dataset.source, hint="check data.tags_column and data.taxonomy_path",
        )
    train, val, test = split_records(dataset.records, data_cfg.val_fraction, data_cfg.test_fraction, data_cfg.split_seed)
    enc = taxonomy.encode_many
    return VAEData(
        taxonomy=taxonomy, dataset=dataset,
        train=enc([r.tags for r in train]), val=enc([r.tags for r in val]), test=enc([r.tags for r in test]),
        report=dataset.report(),
    )


class TensorBatches:
    """An iterable of shuffled ``(batch,)`` tuples over one tensor, re-shuffled every epoch.

    Cheaper than ``DataLoader(TensorDataset)`` (no per-item indexing and collation) and
    deterministic: the order of epoch ``e`` depends only on ``seed`` and ``e``.
    """

    def __init__(self, data: np.ndarray, batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False):
        import torch

        self.data = torch.as_tensor(np.ascontiguousarray(data), dtype=torch.float32)
        self.batch_size = max(1, int(batch_size))
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def _bounds(self) -> list[tuple[int, int]]:
        """Batch (start, stop) pairs; a 1-row tail joins the batch before it (batch norm needs 2+ rows)."""
        n = len(self.data)
        bounds = [(i, min(i + self.batch_size, n)) for i in range(0, n, self.batch_size)]
        if self.drop_last and bounds and bounds[-1][1] - bounds[-1][0] < self.batch_size:
            bounds.pop()
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
            bounds[-2:] = [(bounds[-2][0], bounds[-1][1])]
        return bounds

    def __len__(self) -> int:
        return len(self._bounds())

    def __iter__(self) -> Iterator[tuple[Any]]:
        import torch

        n = len(self.data)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        self.epoch += 1
        for start, stop in self._bounds():
            yield (self.data[order[start:stop]],)
