"""The ``caption_backends`` family: what turns tag sets into captions in ``caption infer``.

Built in: ``llm`` (a causal LM, optionally with a LoRA adapter; :mod:`tagtune.caption.llm`) and
the two LP-MusicCaps baselines ``template`` and ``concat`` (:mod:`tagtune.caption.baselines`).
``model.backend`` names the member: a short name, ``package.module:Class``, or an entry point in
the group ``tagtune.caption_backends`` (see :mod:`tagtune.plugins`). The infer loop knows members
only through :class:`CaptionBackend`: what one is, and what it records, is the member's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from tagtune.caption.config import CaptionModel, Generation, InferConfig, Prompt
from tagtune.plugins import Family, load
from tagtune.records.rows import TagSetRow
from tagtune.records.taxonomy import Taxonomy


@dataclass(frozen=True)
class BackendSettings:
    """What a caption backend is built from: the settings ``caption infer`` reads for it."""

    model: CaptionModel  # the member's own keys sit here (model.options for a third-party member)
    prompt: Prompt
    generation: Generation
    taxonomy: Taxonomy
    device: str


class CaptionBackend(Protocol):
    """Tag sets in, captions out.

    A member is a class built as ``Backend(settings)`` with a :class:`BackendSettings`; building
    it is cheap and checks the member's settings. ``caption infer`` then calls ``load()`` once,
    before the first batch, and reports the notices it returns. ``generate(rows, seed)`` returns
    one caption per row, drawn from ``tagtune.models.sampling.seed_for_row(seed, row)`` so a
    caption does not depend on its batch; ``infer.lint=retry`` calls it again with the next seeds.
    ``provenance()`` becomes every row's ``provenance.caption`` (the row's own seed is added).

    Capabilities:
        loads_weights: ``load()`` loads a model: ``caption infer`` runs the member with
            ``model.threads`` torch threads.
    """

    loads_weights: ClassVar[bool]

    def load(self) -> list[str]: ...

    def generate(self, rows: Sequence[TagSetRow], seed: int) -> list[str]: ...

    def provenance(self) -> dict[str, Any]: ...


CAPTION_BACKENDS = Family(
    name="caption_backends",
    what="caption backend",
    protocol=CaptionBackend,
    builtins={
        "llm": "tagtune.caption.llm:LlmBackend",
        "template": "tagtune.caption.baselines:TemplateBackend",
        "concat": "tagtune.caption.baselines:ConcatBackend",
    },
    key="model.backend",
)


def settings_of(cfg: InferConfig, taxonomy: Taxonomy) -> BackendSettings:
    return BackendSettings(cfg.model, cfg.prompt, cfg.generation, taxonomy, cfg.device)


def load_backend(cfg: InferConfig, taxonomy: Taxonomy) -> CaptionBackend:
    """The member ``model.backend`` names, built from the config (weights not loaded yet).

    Raises:
        ConfigError: An unknown name ("did you mean"), or settings the member refuses.
        DependencyError: A package the member needs is not installed.
    """
    return load(CAPTION_BACKENDS, cfg.model.backend)(settings_of(cfg, taxonomy))
