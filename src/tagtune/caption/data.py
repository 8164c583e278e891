"""Data for the caption LLM: the tag sets to caption, and tag/caption pairs tokenized for fine-tuning.

Tag sets to caption are read by :func:`tagtune.records.reader.read_file`, like every tag-set file.
Fine-tuning examples are tokenized as ``prompt + answer`` with the prompt tokenized on its own, exactly as it is at
inference, and labels masked to -100 on the prompt (and on padding) so the loss only counts the
caption.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tagtune.caption.config import InferData, InferSection, Prompt
from tagtune.caption.prompts import IGNORE_INDEX, mask_prompt_labels, render_pair
from tagtune.config.typed import to_dict
from tagtune.errors import ConfigError
from tagtune.records.reader import read_file
from tagtune.records.rows import TagSetRow
from tagtune.records.tagsets import columns_of
from tagtune.records.taxonomy import Taxonomy


def order_tags(raw: Iterable[str], taxonomy: Taxonomy) -> tuple[list[str], dict[str, list[str]]]:
    """Normalised, de-duplicated tags (known ones in taxonomy order first) and their categories."""
    known, unknown = taxonomy.known(raw)
    cats = {c: ts for c, ts in taxonomy.by_category(known).items() if ts}
    return taxonomy.sort(known) + unknown, cats


def read_tag_sets(infer: InferSection, data: InferData, taxonomy: Taxonomy) -> list[TagSetRow]:
    """The tag sets ``caption infer`` captions: the first ``infer.limit`` rows of ``infer.input``.

    Raises:
        ConfigError: No input. InputError: Bad lines (file:line:field), duplicate ids.
    """
    if not infer.input:
        raise ConfigError("no input", key="infer.input", hint="pass a tags file (INPUT)")
    return list(read_file(infer.input, TagSetRow, taxonomy, columns_of(to_dict(data)), limit=infer.limit))


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


def build_examples(records: Sequence[Any], prompt: Prompt, tokenizer: Any, taxonomy: Taxonomy,
                   max_length: int) -> tuple[list[Example], int]:
    """Examples for tag records with captions; returns ``(examples, skipped_too_long)``."""
    examples: list[Example] = []
    skipped = 0
    for rec in records:
        tags, cats = order_tags(rec.tags, taxonomy)
        pair = render_pair(prompt, tags, rec.caption or "", tokenizer, cats)
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
            key="data.max_length", hint="raise data.max_length or shorten prompt.system",
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
