"""The prompts of ``tagtune tta generate``: caption rows, each with the audio file it becomes.

Prompts are read by the one row reader (:func:`tagtune.records.reader.read_file`) as
:class:`~tagtune.records.rows.CaptionRow`: JSONL, CSV/TSV, Parquet, or plain text with one caption a
line; the caption comes from ``data.caption_column`` (else ``caption``, then ``text``), ids from
``data.id_column`` (rows without one get ``row-<line>``). Ids stay exactly as given; the audio
file is named after :func:`tagtune.files.ids.safe_id` of the id, which keeps letters of any script and
adds a hash whenever it had to change the id, so no two ids share a file. Reading streams: only
the ids seen are held.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tagtune.errors import InputError
from tagtune.files.ids import safe_id
from tagtune.records.reader import Columns, read_file
from tagtune.records.rows import CaptionRow
from tagtune.tta.config import PromptColumns
from tagtune.tta.merge import AUDIO_DIR


def clip_name(row_id: str, fmt: str) -> str:
    """``audio/<file-name-safe id>.<fmt>``, relative to the output folder."""
    return f"{AUDIO_DIR}/{safe_id(row_id)}.{fmt}"


def iter_prompts(path: str | Path, data: PromptColumns, limit: int | None = None) -> Iterator[CaptionRow]:
    """Stream the prompts of a file (at most ``limit`` of them)."""
    columns = Columns(id=data.id_column or "id", caption=data.caption_column, duration=data.duration_column)
    yield from read_file(path, CaptionRow, None, columns, need_tags=False, empty="keep", limit=limit)


@dataclass
class PromptScan:
    """What the validating first pass found."""

    total: int
    ids: set[str]


def scan_prompts(path: str | Path, data: PromptColumns, limit: int | None = None) -> PromptScan:
    """First pass: validate every prompt (and refuse repeated ids) before any audio is made.

    Raises:
        InputError: A malformed line, a missing or empty caption (file:line:field), a bad duration,
            a repeated id.
    """
    ids: set[str] = set()
    for row in iter_prompts(path, data, limit):
        ids.add(row.id)
    if not ids:
        raise InputError("no prompts found", path)
    return PromptScan(total=len(ids), ids=ids)
