"""The two simplest caption baselines of LP-MusicCaps' tables, instant and offline.

* ``concat`` (``model=caption/concat``): the tags joined by commas (optionally in a seeded
  shuffled order, as LP-MusicCaps does);
* ``template`` (``model=caption/template``): one fixed sentence built from a template per taxonomy
  category ("a rock, funk piece with a calm mood, featuring piano and drums, at a slow tempo").
  Every tag of the set is mentioned, so tag coverage is 1.0 by construction.

They stand beside the LLM in every caption table, and make the offline demo dataset read like
real data instead of random-model text.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from tagtune.records.taxonomy import Taxonomy


def _join(tags: Sequence[str]) -> str:
    tags = list(tags)
    return tags[0] if len(tags) == 1 else ", ".join(tags[:-1]) + " and " + tags[-1]


def concat_caption(tags: Sequence[str], shuffle: bool, seed: int) -> str:
    tags = list(tags)
    if shuffle:
        random.Random(seed).shuffle(tags)
    return ", ".join(tags)


def template_caption(tags: Sequence[str], taxonomy: Taxonomy, cfg: Mapping[str, Any]) -> str:
    """``opening`` + the subject (the ``subject_category``'s phrase, else ``subject``) + one phrase per
    other category with tags, in taxonomy order; tags outside the taxonomy use ``default``."""
    templates = cfg["templates"]
    by_cat = {c: ts for c, ts in taxonomy.by_category(tags).items() if ts}
    others = [t for t in tags if t not in taxonomy]
    head = by_cat.pop(cfg["subject_category"], None)
    subject = templates[cfg["subject_category"]].replace("{tags}", _join(head)) if head else cfg["subject"]
    phrases = [templates.get(cat, templates["default"]).replace("{tags}", _join(ts)) for cat, ts in by_cat.items()]
    if others:
        phrases.append(templates["default"].replace("{tags}", _join(others)))
    text = " ".join(p for p in (cfg["opening"], subject, ", ".join(phrases)) if p)
    return text[:1].upper() + text[1:] + "."


class BaselineGenerator:
    """The same surface as :class:`~tagtune.caption.infer.CaptionGenerator`: rows in, captions out."""

    def __init__(self, model_cfg: Mapping[str, Any], taxonomy: Taxonomy, seed: int):
        self.cfg, self.taxonomy, self.seed = model_cfg, taxonomy, seed

    def generate(self, rows: Sequence[Any]) -> tuple[list[str], float]:
        from tagtune.caption.infer import seed_of

        if self.cfg["backend"] == "concat":
            return [concat_caption(r.tags, self.cfg["shuffle"], seed_of(r, self.seed)) for r in rows], 0.0
        return [template_caption(r.tags, self.taxonomy, self.cfg) for r in rows], 0.0
