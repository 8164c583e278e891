"""The two simplest caption baselines of LP-MusicCaps' tables, instant and offline.

* ``concat`` (``model=caption/concat``): the tags joined by commas (optionally in a seeded
  shuffled order, as LP-MusicCaps does);
* ``template`` (``model=caption/template``): one fixed sentence built from a template per taxonomy
  category ("a rock, funk piece with a calm mood, featuring piano and drums, at a slow tempo").
  Every tag of the set is mentioned, so tag coverage is 1.0 by construction.

They stand beside the LLM in every caption table, and make the offline demo dataset read like
real data instead of random-model text. Both are members of the ``caption_backends`` family
(:mod:`tagtune.caption.backends`); their settings are keys of the ``model`` section.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from tagtune import __version__
from tagtune.caption.backends import BackendSettings
from tagtune.caption.config import CaptionModel, given
from tagtune.config.saved import config_hash
from tagtune.errors import ConfigError
from tagtune.models.sampling import seed_for_row
from tagtune.records.rows import TagSetRow
from tagtune.records.taxonomy import Taxonomy


def _join(tags: Sequence[str]) -> str:
    tags = list(tags)
    return tags[0] if len(tags) == 1 else ", ".join(tags[:-1]) + " and " + tags[-1]


def concat_caption(tags: Sequence[str], shuffle: bool, seed: int) -> str:
    tags = list(tags)
    if shuffle:
        random.Random(seed).shuffle(tags)
    return ", ".join(tags)


def template_caption(tags: Sequence[str], taxonomy: Taxonomy, model: CaptionModel) -> str:
    """``opening`` + the subject (the ``subject_category``'s phrase, else ``subject``) + one phrase per
    other category with tags, in taxonomy order; tags outside the taxonomy use ``default``."""
    templates = model.templates or {}
    by_cat = {c: ts for c, ts in taxonomy.by_category(tags).items() if ts}
    others = [t for t in tags if t not in taxonomy]
    head = by_cat.pop(model.subject_category, None)
    subject = templates[model.subject_category].replace("{tags}", _join(head)) if head else model.subject
    phrases = [templates.get(cat, templates["default"]).replace("{tags}", _join(ts)) for cat, ts in by_cat.items()]
    if others:
        phrases.append(templates["default"].replace("{tags}", _join(others)))
    text = " ".join(p for p in (model.opening, subject, ", ".join(phrases)) if p)
    return text[:1].upper() + text[1:] + "."


def _require(model: CaptionModel, backend: str, keys: Sequence[str]) -> None:
    """One line naming the first key a baseline reads that its model section lacks."""
    for key in keys:
        if getattr(model, key) is None:
            raise ConfigError(f"model.{key}: missing: the {backend} caption backend reads it", key=f"model.{key}",
                              hint=f"start from model=caption/{backend}")


class _Baseline:
    """What both baselines share: no weights, and a provenance that hashes the model section."""

    loads_weights = False

    def __init__(self, settings: BackendSettings):
        self.model, self.taxonomy = settings.model, settings.taxonomy

    def load(self) -> list[str]:
        return []

    def provenance(self) -> dict[str, Any]:
        """The caption is a function of the tags and the model section's settings: hash those."""
        digest = config_hash(given(self.model), drop=())[:12]
        return {"model": self.model.name, "revision": f"tagtune:{__version__}", "adapter": None, "quantized": False,
                "prompt": f"{self.model.backend}:{digest}", "generation": {}, "tagtune_version": __version__}


class ConcatBackend(_Baseline):
    """``model.backend=concat``: the tags joined by commas, shuffled per row when ``model.shuffle``."""

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        _require(self.model, "concat", ("shuffle",))

    def generate(self, rows: Sequence[TagSetRow], seed: int) -> list[str]:
        return [concat_caption(r.tags, bool(self.model.shuffle), seed_for_row(seed, r)) for r in rows]


class TemplateBackend(_Baseline):
    """``model.backend=template``: one sentence from a template per taxonomy category."""

    def __init__(self, settings: BackendSettings):
        super().__init__(settings)
        _require(self.model, "template", ("opening", "subject_category", "subject", "templates"))
        if "default" not in (self.model.templates or {}):
            raise ConfigError("model.templates.default: missing: tags of categories without a template use it",
                              key="model.templates", hint="start from model=caption/template")

    def generate(self, rows: Sequence[TagSetRow], seed: int) -> list[str]:
        return [template_caption(r.tags, self.taxonomy, self.model) for r in rows]
