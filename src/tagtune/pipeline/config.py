"""The typed config of ``tagtune pipeline run`` (main config ``pipeline.yaml``, presets ``preset/pipeline``).

Each stage section names the preset and overrides its own command configs are composed with
(:mod:`tagtune.pipeline.stages`); ``verify`` holds the policy of the verify step, ``dataset`` the
dataset folder's splits, card and licence settings, ``executor`` where shard tasks run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from tagtune.config.commands import Command
from tagtune.config.sections import Paths
from tagtune.config.typed import Count, Range, Seed
from tagtune.executors.config import ExecutorConfig

StageName = Literal["vae", "caption", "tta", "verify"]


@dataclass(frozen=True)
class StageSection:
    """How one stage's command configs are composed: a preset of that stage and overrides."""

    preset: str | None
    overrides: list[str]


@dataclass(frozen=True)
class VaeStage(StageSection):
    model: str | None  # --vae-model: reuse a trained model directory


@dataclass(frozen=True)
class CaptionStage(StageSection):
    finetune: bool
    finetune_overrides: list[str]
    adapter: str | None  # --caption-adapter: reuse a trained LoRA adapter


@dataclass(frozen=True)
class VerifyStep:
    """The verify step's policy: keep, re-render or drop clips below the minimum realisation."""

    policy: Literal["keep", "rerender", "drop"]
    min_realisation: Annotated[float, Range(min=0, max=1)]
    max_attempts: Annotated[int, Range(min=1, max=20)]
    overrides: list[str]


@dataclass(frozen=True)
class DatasetCitation:
    """``dataset.citation``: the dataset's own BibTeX entry in the card (null: from the names, this year)."""

    author: str | None
    year: Annotated[int, Range(min=1900, max=2200)] | None
    url: str | None


@dataclass(frozen=True)
class DatasetSection:
    """The dataset folder: grouped splits, the card's name, title, citation and licence, the leakage guard."""

    splits: dict[str, Annotated[float, Range(min=0, max=1)]]
    split_seed: Seed
    name: str
    pretty_name: str | None
    citation: DatasetCitation
    license: str
    attribution: str
    input_licenses: dict[str, str]
    exclude: list[str]
    exclude_ngram: Annotated[int, Range(min=1, max=20)]
    exclude_threshold: Annotated[float, Range(above=0, max=1)]


@dataclass(frozen=True)
class PipelineConfig:
    """``tagtune pipeline run``."""

    task_name: str
    seed: Seed
    num_items: Count
    paths: Paths
    output: str
    tags: str | None
    captions: str | None
    config_dirs: list[str]  # --config-dir: your configs and presets, for the stages' configs too
    stages: list[StageName]
    vae: VaeStage
    caption: CaptionStage
    tta: StageSection
    verify: VerifyStep
    dataset: DatasetSection
    executor: ExecutorConfig


RUN = Command("pipeline run", "pipeline", PipelineConfig)
COMMANDS = (RUN,)
