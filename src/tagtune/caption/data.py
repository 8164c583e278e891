"""Data for the caption LLM: tag sets to caption (inference) and tag/caption pairs (fine-tuning).

Inference input is any file with a tags column (the JSONL of ``vae sample``, CSV, Parquet...):
every input field is kept so the output line can carry it along. Fine-tuning examples are
tokenized as ``prompt + answer`` with the prompt tokenized on its own, exactly as it is at
inference, and labels masked to -100 on the prompt (and on padding) so the loss only counts the
caption.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption.prompts import IGNORE_INDEX, mask_prompt_labels, render_pair
from tagtune.errors import ConfigError, InputError
from tagtune.records import is_missing, iter_records, parse_tags, resolve_path
from tagtune.tagsets import resolve_tag_columns
from tagtune.taxonomy import Taxonomy


@dataclass
class TagInput:
    """One tag set to caption: its id, tags (known ones in taxonomy order, then unknown ones),
    tags per category, the input line, and the whole input record (carried into the output)."""

    id: str
    tags: list[str]
    categories: dict[str, list[str]]
    line: int
    row: dict[str, Any] = field(default_factory=dict)


def order_tags(raw: Iterable[str], taxonomy: Taxonomy) -> tuple[list[str], dict[str, list[str]]]:
    """Normalised, de-duplicated tags (known ones in taxonomy order first) and their categories."""
    known, unknown = taxonomy.known(raw)
    cats = {c: ts for c, ts in taxonomy.by_category(known).items() if ts}
    return taxonomy.sort(known) + unknown, cats


def read_tag_inputs(path: str | Path, data_cfg: Mapping[str, Any], taxonomy: Taxonomy,
                    limit: int | None = None, id_column: str = "id") -> list[TagInput]:
    """Read the tag sets to caption, checking ids and tags with file:line:field errors.

    Rows without an id get ``row-<line>`` (the same ids the other readers give). Tags outside
    the taxonomy are kept (the prompt shows them) but have no category.

    Raises:
        InputError: Missing tags column, unparsable or empty tags, duplicate ids, bad lines.
    """
    source = resolve_path(path)
    out: list[TagInput] = []
    seen: dict[str, int] = {}
    cols: list[str] | None = None
    for line, row in iter_records(source):
        if cols is None:
            cat_cols = data_cfg.get("category_columns")
            cols = resolve_tag_columns(row, taxonomy, data_cfg.get("aspect_column"), dict(cat_cols) if cat_cols else None, source, line)
        if limit is not None and len(out) >= limit:
            break
        raw: list[str] = []
        for col in cols:
            if col not in row and len(cols) == 1:
                raise InputError("missing", source, line, col, hint="every line needs the tags column")
            try:
                raw += parse_tags(row.get(col))
            except ValueError as exc:
                raise InputError(str(exc), source, line, col) from exc
        tags, cats = order_tags(raw, taxonomy)
        if not tags:
            raise InputError("no tags", source, line, cols[0] if len(cols) == 1 else "/".join(cols),
                             hint="every line needs at least one tag; remove the line or fill it in")
        raw_id = row.get(id_column)
        if isinstance(raw_id, (dict, list)):
            raise InputError(f"id must be a string or number, got {type(raw_id).__name__}", source, line, id_column)
        rid = f"row-{line:06d}" if is_missing(raw_id) else str(raw_id)
        if rid in seen:
            raise InputError(f"duplicate id '{rid}' (first on line {seen[rid]})", source, line, id_column,
                             hint="ids must be unique: outputs are keyed by id")
        seen[rid] = line
        record = dict(row) if id_column in row and not is_missing(raw_id) else {id_column: rid, **row}
        out.append(TagInput(rid, tags, cats, line, record))
    if cols is None:
        raise InputError("no rows", source)
    return out


# -- fine-tuning ---------------------------------------------------------------------------------

@dataclass
class Example:
    """One tokenized training example."""

    input_ids: list[int]
    labels: list[int]


def encode_example(tokenizer: Any, prompt: str, answer: str, max_length: int) -> Example | None:
    """Tokenize prompt and answer separately (as at inference) and mask the prompt in the labels.

    Long answers are cut to fit ``max_length``; an example whose prompt alone leaves no room for
    the answer gives ``None``.
    """
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    room = max_length - len(p_ids)
    if room < 1 or not a_ids:
        return None
    ids = list(p_ids) + list(a_ids[:room])
    return Example(ids, mask_prompt_labels(ids, len(p_ids)))


def build_examples(records: Sequence[Any], prompt_cfg: Mapping[str, Any], tokenizer: Any, taxonomy: Taxonomy,
                   max_length: int) -> tuple[list[Example], int]:
    """Examples for tag records with captions; returns ``(examples, skipped_too_long)``."""
    examples: list[Example] = []
    skipped = 0
    for rec in records:
        tags, cats = order_tags(rec.tags, taxonomy)
        pair = render_pair(prompt_cfg, tags, rec.caption or "", tokenizer, cats)
        ex = encode_example(tokenizer, pair.prompt, pair.answer, max_length)
        if ex is None:
            skipped += 1
        else:
            examples.append(ex)
    return examples, skipped


def check_examples(examples: Sequence[Example], skipped: int, split: str, max_length: int) -> None:
    if not examples and skipped:
        raise ConfigError(
            f"every {split} example's prompt is longer than data.max_length={max_length} tokens",
            hint="raise data.max_length or shorten prompt.system",
        )


class Collator:
    """Right-pads a batch of examples; padding is masked in both attention and labels."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = int(pad_token_id)

    def __call__(self, batch: Sequence[Example]) -> dict[str, Any]:
        import torch

        width = max(len(ex.input_ids) for ex in batch)
        ids = torch.full((len(batch), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ex in enumerate(batch):
            n = len(ex.input_ids)
            ids[i, :n] = torch.tensor(ex.input_ids, dtype=torch.long)
            labels[i, :n] = torch.tensor(ex.labels, dtype=torch.long)
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
