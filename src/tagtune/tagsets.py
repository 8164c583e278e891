"""Tag datasets: rows of tag sets (optionally with captions) read from files or the Hub.

Shared by the VAE (tag sets only) and caption (tag sets + captions) stages. Rows are checked
against a :class:`~tagtune.taxonomy.Taxonomy`: unknown tags are counted (and the most frequent
reported), rows left without any known tag are dropped with a count. The tag column may be a
string, a list, or split over one column per category; ``aspect_column=None`` finds it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tagtune.errors import DependencyError, InputError
from tagtune.records import columns, is_missing, iter_records, parse_tags, resolve_path
from tagtune.taxonomy import Taxonomy

# Column names tried, in order, when no tag column is configured.
TAG_COLUMN_GUESSES = ("tags", "aspect_list", "aspects")


@dataclass
class TagRecord:
    """One row: its id, its known tags (taxonomy order), optional caption, and where it came from."""

    id: str
    tags: list[str]
    caption: str | None = None
    line: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TagDataset:
    records: list[TagRecord]
    taxonomy: Taxonomy
    source: str
    total_rows: int = 0
    dropped_rows: int = 0
    unknown_tags: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return len(self.records)

    def report(self, top: int = 5) -> list[str]:
        """Human-readable lines about what was read, dropped and not recognised."""
        lines = [f"read {self.total_rows} rows from {self.source}: {len(self.records)} kept"]
        if self.dropped_rows:
            lines.append(f"dropped {self.dropped_rows} rows with no tag from the taxonomy")
        if self.unknown_tags:
            common = ", ".join(f"'{t}' x{n}" for t, n in self.unknown_tags.most_common(top))
            lines.append(
                f"ignored {sum(self.unknown_tags.values())} unknown tag uses "
                f"({len(self.unknown_tags)} distinct); most frequent: {common}"
            )
        return lines

    def tag_sets(self) -> list[list[str]]:
        return [r.tags for r in self.records]


def split_records(records: list[Any], val_fraction: float, test_fraction: float, seed: int) -> tuple[list, list, list]:
    """Seeded shuffle into (train, validation, test); train is never empty."""
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise InputError(f"bad split fractions: val={val_fraction}, test={test_fraction} (each in [0, 1), sum < 1)")
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


def resolve_tag_columns(
    first: Mapping[str, Any], taxonomy: Taxonomy, aspect_column: str | None = None,
    category_columns: Mapping[str, str] | None = None, source: Any = None, line: int | None = None,
) -> list[str]:
    """The column(s) holding the tags, decided from the first row.

    ``category_columns`` wins; then ``aspect_column`` if present. A column the user named that is
    missing is an error (no guessing past a typo) unless it is one of the usual names, in which
    case the usual names (``tags``, ``aspect_list``, ``aspects``) and then per-category columns
    (``<category>`` or ``<category>_tags``) are tried.
    """
    available = ", ".join(first) or "(none)"
    if category_columns:
        missing = [c for c in category_columns.values() if c not in first]
        if missing:
            raise InputError(
                f"no column {', '.join(repr(m) for m in missing)}; available columns: {available}",
                source, line, hint="set data.category_columns to existing columns",
            )
        return list(category_columns.values())
    if aspect_column and aspect_column in first:
        return [aspect_column]
    if aspect_column and aspect_column not in TAG_COLUMN_GUESSES:
        raise InputError(
            f"no column '{aspect_column}'; available columns: {available}",
            source, line, aspect_column, hint="set data.aspect_column (or data.category_columns) to one of them",
        )
    for guess in TAG_COLUMN_GUESSES:
        if guess in first:
            return [guess]
    per_cat = [name for cat in taxonomy.categories for name in (cat, f"{cat}_tags") if name in first]
    if per_cat:
        return per_cat
    raise InputError(
        f"cannot find a tag column (tried {', '.join(TAG_COLUMN_GUESSES)} and per-category columns); "
        f"available columns: {available}",
        source, line, hint="set data.aspect_column",
    )


def read_tag_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    taxonomy: Taxonomy,
    source: Any,
    aspect_column: str | None = None,
    category_columns: Mapping[str, str] | None = None,
    caption_column: str | None = None,
    require_caption: bool = False,
    id_column: str = "id",
    limit: int | None = None,
    keep_columns: Iterable[str] = (),
    unique_ids: bool = True,
) -> TagDataset:
    """Validate rows into a TagDataset. ``source`` names the file in errors.

    With ``unique_ids`` a repeated id is an error (outputs are keyed by id); without it ids are
    kept as they are (training and evaluation do not need them).
    """
    records: list[TagRecord] = []
    unknown: Counter = Counter()
    total = dropped = 0
    tag_cols: list[str] = []
    seen_ids: set[str] = set()
    keep = tuple(keep_columns)
    for line, row in rows:
        if total == 0:
            tag_cols = resolve_tag_columns(row, taxonomy, aspect_column, category_columns, source, line)
            if caption_column and caption_column not in row:
                raise InputError(
                    f"no column '{caption_column}'; available columns: {', '.join(row)}",
                    source, hint="set data.caption_column",
                )
        if limit is not None and total >= limit:
            break
        total += 1
        raw_tags: list[str] = []
        for col in tag_cols:
            try:
                raw_tags += parse_tags(row.get(col))
            except ValueError as exc:
                raise InputError(str(exc), source, line, col) from exc
        known, unknown_here = taxonomy.known(raw_tags)
        unknown.update(unknown_here)
        caption = None
        if caption_column:
            value = row.get(caption_column)
            if is_missing(value) or not isinstance(value, str):
                if require_caption:
                    what = "is empty" if is_missing(value) else f"is a {type(value).__name__}, expected text"
                    raise InputError(f"caption {what}", source, line, caption_column,
                                     hint="remove the row or fill in its caption")
            else:
                caption = " ".join(value.split())
        if not known:
            dropped += 1
            continue
        raw_id = row.get(id_column)
        rid = f"row-{line:06d}" if is_missing(raw_id) else str(raw_id)
        if unique_ids and rid in seen_ids:
            raise InputError(f"duplicate id '{rid}'", source, line, id_column, hint="ids must be unique")
        seen_ids.add(rid)
        extra = {k: row[k] for k in keep if k in row}
        records.append(TagRecord(rid, taxonomy.sort(known), caption, line, extra))
    if total == 0:
        raise InputError("no rows", source)
    return TagDataset(records, taxonomy, str(source), total, dropped, unknown)


def _hub_rows(name: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        import datasets
    except ImportError as exc:
        raise DependencyError(
            "Hub datasets need the `datasets` package", hint="pip install 'tagtune[hub]', or set data.path to a local file"
        ) from exc
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot load Hub dataset '{name}' (split '{split}'): {first[:200]}",
            hint="check the name and your network (HF_HUB_OFFLINE=1 means no downloads), or set data.path to a local file",
        ) from exc
    yield from enumerate(ds, start=1)


def load_tag_dataset(
    data_cfg: Mapping[str, Any],
    taxonomy: Taxonomy | None = None,
    caption: bool = False,
    keep_columns: Iterable[str] = (),
    unique_ids: bool = False,
) -> TagDataset:
    """Read the tag dataset a ``data`` config section describes.

    Args:
        data_cfg: ``data.*`` keys: path or dataset_name/dataset_split, taxonomy_path,
            aspect_column, category_columns, caption_column, limit.
        taxonomy: Use this taxonomy instead of ``data.taxonomy_path``.
        caption: Read (and require) the caption column too.
        keep_columns: Extra columns to carry along in ``TagRecord.extra``.
        unique_ids: Refuse repeated ids (for outputs keyed by id).
    """
    taxonomy = taxonomy or Taxonomy.load(data_cfg["taxonomy_path"])
    path = data_cfg.get("path")
    name = data_cfg.get("dataset_name")
    if path:
        resolved = resolve_path(path)
        rows: Iterable[tuple[int, Mapping[str, Any]]] = iter_records(resolved)
        source: Any = resolved
    elif name:
        rows = _hub_rows(name, data_cfg.get("dataset_split") or "train")
        source = f"hf://{name}[{data_cfg.get('dataset_split') or 'train'}]"
    else:
        raise InputError("no data: set data.path (a local file) or data.dataset_name (a Hub dataset)")
    cat_cols = data_cfg.get("category_columns")
    return read_tag_rows(
        rows, taxonomy, source,
        aspect_column=data_cfg.get("aspect_column"),
        category_columns=dict(cat_cols) if cat_cols else None,
        caption_column=data_cfg.get("caption_column") if caption else None,
        require_caption=caption,
        limit=data_cfg.get("limit"),
        keep_columns=keep_columns,
        unique_ids=unique_ids,
    )


def file_columns(path: str) -> list[str]:
    """Columns of a data file, for error messages and `--help` hints."""
    return columns(resolve_path(path))
