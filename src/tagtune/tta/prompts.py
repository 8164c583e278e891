"""Reading PROMPTS for ``tagtune tta generate``: JSONL, CSV/TSV, Parquet or plain text, streamed.

Each record becomes a :class:`Prompt` with a file-name-safe id: the input's id (``data.id_column``)
run through :func:`tagtune.ids.safe_id`, or, when a record has none, an id derived from its text
(same text -> same id on every machine). Two records whose ids coincide after sanitising are an
error, found by :func:`scan_prompts` before any audio is made. The text comes from
``data.text_column`` or, when that is unset, from ``caption`` (the output of ``caption infer``)
and else ``text``; plain-text files hold one prompt per line. Nothing here holds more than one
record at a time except the set of ids seen.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import InputError
from tagtune.ids import safe_id, text_id
from tagtune.records import is_missing, iter_records, resolve_path

# Metadata fields this stage writes itself; input fields with these names are not carried along.
PRODUCED_FIELDS = ("file_name", "id", "text", "duration", "sample_rate", "seed", "model", "generation", "source_id")


@dataclass
class Prompt:
    """One prompt to render.

    Attributes:
        id: File-name-safe id (the audio file's stem).
        text: The prompt text.
        duration: Seconds requested by the input line, or None for the configured default.
        line: Line (or Parquet row) in the input, for messages.
        source_id: The id as written in the input, when it differs from ``id``.
        id_from_text: True when the input gave no id and ``id`` was derived from the text.
        extra: Other input fields, carried into the metadata line.
    """

    id: str
    text: str
    duration: float | None
    line: int
    source_id: str | None = None
    id_from_text: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PromptScan:
    """What the validating first pass found."""

    total: int
    ids: set[str]


def _jsonable(value: Any) -> Any:
    """Input values as JSON-safe Python (NaN -> None; dates, decimals, bytes -> text)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return json.loads(json.dumps(value, default=str))


def _text_of(rec: dict[str, Any], text_column: str | None, path: Path, line: int) -> tuple[str, str]:
    if text_column:
        name = text_column
        if name not in rec:
            raise InputError(f"no '{name}' field", path, line, field=name,
                             hint=f"set data.text_column to one of: {', '.join(map(str, rec)) or '(none)'}")
    else:
        name = "caption" if "caption" in rec else "text"
        if name not in rec:
            raise InputError("no prompt text: expected a 'caption' or 'text' field", path, line, field="caption",
                             hint="or name the column with data.text_column=...")
    value = rec[name]
    if is_missing(value):
        raise InputError("empty prompt text", path, line, field=name)
    if not isinstance(value, str):
        raise InputError(f"prompt text is a {type(value).__name__}, expected a string", path, line, field=name)
    return name, value.strip()


def _duration_of(rec: dict[str, Any], column: str | None, path: Path, line: int) -> float | None:
    if not column or column not in rec or is_missing(rec[column]):
        return None
    value = rec[column]
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InputError(f"duration {value!r} is not a number of seconds", path, line, field=column) from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"duration must be a positive number of seconds (got {value!r})", path, line, field=column)
    return seconds


def iter_prompts(path: str | Path, data_cfg: Any) -> Iterator[Prompt]:
    """Stream the prompts of a file (at most ``data.limit`` of them).

    Raises:
        InputError: A malformed line, or a missing / empty / non-string text (file:line:field),
            or a bad duration.
    """
    path = resolve_path(path)
    text_column = data_cfg.get("text_column") or None
    id_column = data_cfg.get("id_column") or None
    duration_column = data_cfg.get("duration_column") or None
    limit = data_cfg.get("limit")
    if limit is not None and int(limit) < 0:
        from tagtune.errors import ConfigError

        raise ConfigError(f"data.limit must be >= 0 (got {limit})")
    skip = set(PRODUCED_FIELDS) | {id_column, duration_column}
    count = 0
    for line, rec in iter_records(path, text_field=text_column or "text"):
        if limit is not None and count >= int(limit):
            return
        name, text = _text_of(rec, text_column, path, line)
        raw_id = rec.get(id_column) if id_column else None
        if is_missing(raw_id):
            ident, source = text_id(text), None
        else:
            source = str(raw_id)
            ident = safe_id(source)
        extra = {k: _jsonable(v) for k, v in rec.items() if k not in skip and not (k == name and name == "text")}
        count += 1
        yield Prompt(
            id=ident, text=text, duration=_duration_of(rec, duration_column, path, line), line=line,
            source_id=source if source is not None and source != ident else None, id_from_text=source is None,
            extra=extra,
        )


def scan_prompts(path: str | Path, data_cfg: Any) -> PromptScan:
    """First pass: validate every prompt and refuse ids that collide (also after sanitising).

    Raises:
        InputError: As :func:`iter_prompts`, or a duplicate id naming both lines.
    """
    path = resolve_path(path)
    seen: dict[str, tuple[int, str]] = {}
    total = 0
    for prompt in iter_prompts(path, data_cfg):
        total += 1
        raw = prompt.id if prompt.id_from_text else (prompt.source_id or prompt.id)
        first = seen.get(prompt.id)
        if first is not None:
            first_line, first_raw = first
            if prompt.id_from_text and first_raw == prompt.id:
                what, hint = f"the same text as line {first_line} gives the same id", "add an id column to tell them apart"
            elif first_raw != raw:
                what = f"id '{raw}' becomes '{prompt.id}' as a file name, like id '{first_raw}' on line {first_line}"
                hint = "ids are made file-name safe (separators, '..' and spaces become '_'): make them differ in letters or digits"
            else:
                what, hint = f"duplicate id '{raw}' (first on line {first_line})", "give every line a unique id"
            raise InputError(what, path, prompt.line, field=data_cfg.get("id_column") or "id", hint=hint)
        seen[prompt.id] = (prompt.line, raw)
    if total == 0:
        raise InputError("no prompts found", path)
    return PromptScan(total=total, ids=set(seen))
