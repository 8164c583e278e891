"""The one reader of every hop's file: user records in, declared rows out.

Readers accept the usual spellings of other projects (``aspect_list``, ``text``, ``prediction``)
and any supported file type (:mod:`tagtune.files.readers`); :func:`read_rows` is the only loop
that turns user records into rows (:mod:`tagtune.records.rows`): it resolves the columns once,
gives rows without an id the documented ``row-<line>`` id, parses tag cells and names
``file:line: field`` in every error. :func:`read_clips` reads a clip folder's ``metadata.jsonl``.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.files.readers import is_missing, iter_records, parse_tags, resolve_path
from tagtune.records.rows import CAPTION_COLUMNS, TAG_COLUMNS, ClipRow, TagSetRow
from tagtune.records.taxonomy import Taxonomy, normalize_tag


@dataclass
class Columns:
    """Where our fields sit in a user's file; None means "try the usual names"."""

    id: str = "id"
    tags: str | None = None
    category_columns: Mapping[str, str] | None = None
    caption: str | None = None
    reference: str | None = None
    duration: str | None = None


@dataclass
class ReadStats:
    """What a read found: rows read and dropped, unknown tags, the columns used."""

    source: str
    total: int = 0
    dropped: int = 0
    unknown_tags: Counter = field(default_factory=Counter)
    columns: dict[str, Any] = field(default_factory=dict)

    def report(self, top: int = 5) -> list[str]:
        lines = [f"read {self.total} rows from {self.source}: {self.total - self.dropped} kept"]
        if self.dropped:
            lines.append(f"dropped {self.dropped} rows with no tag from the taxonomy")
        if self.unknown_tags:
            common = ", ".join(f"'{t}' x{n}" for t, n in self.unknown_tags.most_common(top))
            lines.append(f"ignored {sum(self.unknown_tags.values())} unknown tag uses "
                         f"({len(self.unknown_tags)} distinct); most frequent: {common}")
        return lines


@functools.cache
def _declared(kind: type[TagSetRow]) -> frozenset[str]:
    return frozenset(f.name for f in fields(kind)) - {"extra", "line"}


class _Resolved:
    """The columns of one file, decided from its first record."""

    def __init__(self, first: Mapping[str, Any], kind: type[TagSetRow], taxonomy: Taxonomy | None, cols: Columns,
                 source: str, line: int, need_tags: bool):
        self.available = ", ".join(map(str, first)) or "(none)"
        self.source, self.line = source, line
        self.tags = self._tag_columns(first, taxonomy, cols, need_tags)
        need_caption = "reference_caption" in _declared(kind)  # CaptionRow and later hops
        usual = CAPTION_COLUMNS if need_caption else ("caption",)  # a tag set's caption: only when named so
        self.caption = self._pick(first, cols.caption, usual, "caption", need_caption)
        self.reference = cols.reference if cols.reference and cols.reference in first and cols.reference != self.caption else None
        self.duration = cols.duration if cols.duration and cols.duration in first else None
        self.id = cols.id
        derived = set(taxonomy.categories) if taxonomy is not None else set()
        self.consumed = {self.id, *self.tags, self.caption, self.reference, self.duration} | derived | _declared(kind)
        if not need_tags:
            self.consumed |= set(TAG_COLUMNS[:1])  # optional tags are looked for on every line

    def _tag_columns(self, first: Mapping[str, Any], taxonomy: Taxonomy | None, cols: Columns,
                     required: bool) -> list[str]:
        if cols.category_columns:
            missing = [c for c in cols.category_columns.values() if c not in first]
            if missing:
                raise InputError(f"no column {', '.join(map(repr, missing))}; available columns: {self.available}",
                                 self.source, self.line, hint="set data.category_columns to existing columns")
            return list(cols.category_columns.values())
        if cols.tags and cols.tags in first:
            return [cols.tags]
        if cols.tags and cols.tags not in TAG_COLUMNS:
            raise InputError(f"no column '{cols.tags}'; available columns: {self.available}", self.source, self.line,
                             cols.tags, hint="set the tags column (data.tags_column / --tags-column) to one of them")
        for name in TAG_COLUMNS:
            if name in first:
                return [name]
        cats = taxonomy.categories if taxonomy is not None else {}
        per_cat = [n for c in cats for n in (c, f"{c}_tags") if n in first]
        if per_cat or not required:
            return per_cat
        raise InputError(f"cannot find a tag column (tried {', '.join(TAG_COLUMNS)} and per-category columns); "
                         f"available columns: {self.available}", self.source, self.line,
                         hint="name it with data.tags_column (or --tags-column)")

    def _pick(self, first: Mapping[str, Any], wanted: str | None, usual: tuple[str, ...], what: str,
              required: bool) -> str | None:
        if wanted and (wanted in first or required):
            if wanted not in first:
                raise InputError(f"no {what} column '{wanted}'; available columns: {self.available}",
                                 self.source, self.line, hint=f"name an existing column as the {what} column")
            return wanted
        found = next((n for n in usual if n in first), None)
        if found is None and required:
            raise InputError(f"no {what} column (tried {', '.join(usual)}); available columns: {self.available}",
                             self.source, self.line, hint=f"name the {what} column in the config or with a flag")
        return found


def _text(value: Any, source: str, line: int, column: str) -> str | None:
    if is_missing(value):
        return None
    if not isinstance(value, str):
        raise InputError(f"expected text, got {type(value).__name__}", source, line, column)
    return " ".join(value.split())


def jsonable(value: Any) -> Any:
    """Input values as JSON-safe Python (NaN -> None; numpy arrays -> lists; dates, bytes -> text)."""

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)  # what json.dumps(default=str) would write


def _row_id(rec: Mapping[str, Any], column: str, source: str, line: int) -> str:
    raw = rec.get(column)
    if isinstance(raw, (dict, list)):
        raise InputError(f"id must be a string or number, got {type(raw).__name__}", source, line, column)
    return f"row-{line:06d}" if is_missing(raw) else str(raw)


def _tags_of(rec: Mapping[str, Any], res: _Resolved, taxonomy: Taxonomy | None, line: int,
             unknown: str, stats: ReadStats, need_tags: bool) -> list[str]:
    raw: list[str] = []
    columns = res.tags or ([] if need_tags else [c for c in TAG_COLUMNS if c in rec][:1])
    for col in columns:
        if len(columns) == 1 and col not in rec:
            if not need_tags:
                continue  # optional tags (audio prompts): a line without them has none
            raise InputError("missing", res.source, line, col, hint="every line needs the tags column")
        try:
            raw += parse_tags(rec.get(col))
        except ValueError as exc:
            raise InputError(str(exc), res.source, line, col) from exc
    if taxonomy is None:
        return list(dict.fromkeys(t for t in map(normalize_tag, raw) if t))
    known, unknown_here = taxonomy.known(raw)
    stats.unknown_tags.update(unknown_here)
    return taxonomy.sort(known) + (unknown_here if unknown == "keep" else [])


def _declared_values(rec: Mapping[str, Any], kind: type[TagSetRow], source: str, line: int) -> dict[str, Any]:
    """Our own fields read back from an earlier hop's file (provenance, pair fields, clip fields)."""
    out: dict[str, Any] = {}
    for name in sorted(_declared(kind) - {"id", "tags", "caption", "reference_caption", "duration"}):
        value = jsonable(rec.get(name))
        if value is None or value == "":
            continue
        if name == "provenance" and not isinstance(value, dict):
            raise InputError(f"expected an object, got {type(value).__name__}", source, line, name)
        out[name] = value
    for name in ("file_name", "split"):
        if name in _declared(kind) and not isinstance(out.get(name), str):
            raise InputError(f"missing or not text (a {kind.hop} needs it)", source, line, name)
    if "sample_rate" in _declared(kind) and not isinstance(out.get("sample_rate"), int):
        raise InputError("missing or not an integer", source, line, "sample_rate")
    return out


def read_rows(
    records: Iterable[tuple[int, Mapping[str, Any]]],
    source: str | Path,
    kind: type[TagSetRow] = TagSetRow,
    taxonomy: Taxonomy | None = None,
    columns: Columns | None = None,
    *,
    unknown: str = "keep",
    empty: str = "error",
    unique_ids: bool = True,
    need_tags: bool = True,
    need_caption: bool = True,
    limit: int | None = None,
    stats: ReadStats | None = None,
) -> Iterator[TagSetRow]:
    """Turn user records into rows of one hop; the single reader of every tag-set file.

    Args:
        records: ``(line, record)`` pairs (:func:`tagtune.files.readers.iter_records`, a Hub dataset...).
        source: Names the file in errors.
        kind: The hop's row type; :class:`CaptionRow` and later need a caption.
        taxonomy: Orders and checks tags; without one, tags are only normalised.
        columns: Where the fields are (None: the usual names).
        unknown: ``keep`` tags outside the taxonomy (after the known ones) or ``drop`` them.
        empty: A row left without tags is an ``error``, ``drop``ped (counted) or ``keep``t.
        unique_ids: Refuse a repeated id (outputs are keyed by id).
        need_tags: False: a file without a tag column is fine (audio prompts); its rows have no tags.
        need_caption: False: a caption row may have an empty caption (scoring generated captions).
        limit: Stop after this many rows.
        stats: Filled with counts as the rows are read.

    Raises:
        InputError: ``file:line: field``: a missing column, an unparsable tag cell, a bad id or text.
    """
    cols, source = columns or Columns(), str(source)
    stats = stats if stats is not None else ReadStats(source)
    res: _Resolved | None = None
    seen: dict[str, int] = {}
    kept = 0
    for line, rec in records:
        if res is None:
            res = _Resolved(rec, kind, taxonomy, cols, source, line, need_tags)
            stats.columns = {"tags": res.tags, "caption": res.caption, "reference": res.reference, "id": res.id}
        if limit is not None and kept >= limit:
            break
        stats.total += 1
        tags = _tags_of(rec, res, taxonomy, line, unknown, stats, need_tags)
        if not tags and empty != "keep" and res.tags:
            if empty == "drop":
                stats.dropped += 1
                continue
            raise InputError("no tags", source, line, "/".join(res.tags),
                             hint="every line needs at least one tag; remove the line or fill it in")
        yield _make_row(rec, kind, res, tags, source, line, seen, unique_ids, need_caption)
        kept += 1
    if res is None:
        raise InputError("no rows", source)


def _make_row(rec: Mapping[str, Any], kind: type[TagSetRow], res: _Resolved, tags: list[str], source: str, line: int,
              seen: dict[str, int], unique_ids: bool, need_caption: bool) -> TagSetRow:
    rid = _row_id(rec, res.id, source, line)
    if unique_ids and rid in seen:
        raise InputError(f"duplicate id '{rid}' (first on line {seen[rid]})", source, line, res.id,
                         hint="ids must be unique: outputs are keyed by id")
    seen[rid] = line
    values = _declared_values(rec, kind, source, line)
    caption = _text(rec.get(res.caption), source, line, res.caption) if res.caption else None
    if "reference_caption" in _declared(kind):
        if not caption and need_caption:
            raise InputError("caption is empty", source, line, res.caption, hint="remove the row or fill in its caption")
        caption = caption or ""
        if res.reference:
            values["reference_caption"] = _text(rec.get(res.reference), source, line, res.reference)
        elif isinstance(rec.get("reference_caption"), str):
            values["reference_caption"] = rec["reference_caption"]
        values["duration"] = _duration(rec, res.duration or "duration", source, line, required="file_name" in values)
    extra = {str(k): jsonable(v) for k, v in rec.items() if k not in res.consumed}
    return kind(id=rid, tags=tags, caption=caption, extra=extra, line=line, **values)


def _duration(rec: Mapping[str, Any], column: str, source: str, line: int, required: bool) -> float | None:
    value = rec.get(column)
    if is_missing(value):
        if required:
            raise InputError("missing", source, line, column)
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InputError(f"duration {value!r} is not a number of seconds", source, line, column) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"duration must be a positive number of seconds (got {value!r})", source, line, column)
    return seconds


def read_file(path: str | Path, kind: type[TagSetRow] = TagSetRow, taxonomy: Taxonomy | None = None,
              columns: Columns | None = None, **kw: Any) -> Iterator[TagSetRow]:
    """:func:`read_rows` over a file (JSONL, JSON, CSV/TSV, Parquet, or .txt with one caption a line)."""
    path = resolve_path(path)
    text_field = (columns.caption if columns and columns.caption else "caption")
    yield from read_rows(iter_records(path, text_field=text_field), path, kind, taxonomy, columns, **kw)


def read_clips(path: str | Path, **kw: Any) -> Iterator[ClipRow]:
    """The rows of a clip folder's ``metadata.jsonl`` (or a shard part): the one reader of clip metadata.

    Every line needs ``file_name``, ``duration`` and ``sample_rate``; tags are optional per line and
    kept as written (no taxonomy); ids follow the one rule of :func:`read_rows`.
    """
    kw.setdefault("empty", "keep")
    kw.setdefault("need_tags", False)
    yield from read_file(path, ClipRow, None, **kw)
