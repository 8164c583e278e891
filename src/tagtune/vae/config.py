"""The typed configs of ``tagtune vae train``, ``vae sample`` and ``vae evaluate``.

The three commands compose ``vae_training`` (its presets set keys for all of them), but each
reads only its own part: ``train`` the data, model, loss and Lightning sections; ``sample`` only
``sample`` and ``seed``; ``evaluate`` only ``evaluate``, ``seed`` and the fallback taxonomy in
``data``. A key the user sets that the command does not read is refused in one line (see
:mod:`tagtune.config.commands`). Types and ranges are the schema; the defaults stay in the YAML.
Light on purpose: the CLI imports it at the top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from tagtune.config.commands import Command
from tagtune.config.sections import Callbacks, Logger, Paths, TagData, Trainer
from tagtune.config.typed import Count, Range, Seed

NonNegative = Annotated[float, Range(min=0)]
Share = Annotated[float, Range(min=0, max=1)]
Natural = Annotated[int, Range(min=0)]

Mode = Literal["sized", "bernoulli", "threshold"]
Prior = Literal["aggregate", "normal"]


@dataclass(frozen=True)
class VaeModel:
    """``model/vae/``: the network and its optimiser."""

    latent_dim: Count
    hidden_dim: Count
    num_layers: Count
    dropout: Annotated[float, Range(min=0, max=0.95)]
    batch_norm: bool
    beta: NonNegative
    learning_rate: Annotated[float, Range(above=0)]
    weight_decay: NonNegative
    max_set_size: Count | None
    threads: Count | None


@dataclass(frozen=True)
class VaeLoss:
    """``loss``: the weights of the loss terms and the guards against posterior collapse."""

    bce_weight: NonNegative
    kld_weight: NonNegative
    size_weight: NonNegative
    free_bits: NonNegative
    kl_warmup_epochs: Natural


@dataclass(frozen=True)
class VaeTrain:
    """``train``: the model directory and the checkpoint to resume from."""

    output: str
    resume: str | None


@dataclass(frozen=True)
class VaeSample:
    """``sample``: the model, how sets are drawn, and what every set must satisfy."""

    model: str | None
    output: str | None
    taxonomy_path: str | None
    num_samples: Natural
    batch_size: Count
    temperature: NonNegative
    threshold: Share
    mode: Mode
    prior: Prior
    require: list[str]
    forbid: list[str]
    # {category: K} from YAML, or ["category=K", ...] from --min/--max; the counts are checked
    # against the model's taxonomy when sampling starts (vae.constraints)
    category_min: dict[str, Any] | list[str] | None
    category_max: dict[str, Any] | list[str] | None
    min_tags: Natural
    max_tags: Natural | None
    dedupe: bool
    max_attempts: Count
    rules: bool
    min_per_tag: Count | None
    quotas: dict[str, Natural]
    min_tag_probability: Share
    skip_absent: bool
    counterfactual: Natural
    concepts: list[str]


@dataclass(frozen=True)
class VaeEvaluate:
    """``evaluate``: the files to compare, the k-NN settings, where results go."""

    input: str | None
    reference: str | None
    train: str | None
    taxonomy_path: str | None
    model: str | None
    tags_column: str | None
    k: Count
    subsample: Annotated[int, Range(min=2)] | None
    repeats: Count
    output: str | None
    plots: bool
    plots_dir: str | None


@dataclass(frozen=True)
class TaxonomyOnly:
    """The part of ``data`` that ``vae evaluate`` reads: the taxonomy when neither it nor --model names one."""

    taxonomy_path: str


@dataclass(frozen=True)
class TrainConfig:
    """``tagtune vae train``."""

    task_name: str
    seed: Seed
    paths: Paths
    data: TagData
    model: VaeModel
    loss: VaeLoss
    trainer: Trainer
    callbacks: Callbacks
    logger: Logger
    train: VaeTrain


@dataclass(frozen=True)
class SampleConfig:
    """``tagtune vae sample``: everything it needs is in the model directory and ``sample``."""

    seed: Seed
    sample: VaeSample


@dataclass(frozen=True)
class EvaluateConfig:
    """``tagtune vae evaluate``."""

    seed: Seed
    data: TaxonomyOnly
    evaluate: VaeEvaluate


TRAIN = Command("vae train", "vae_training", TrainConfig)
SAMPLE = Command("vae sample", "vae_training", SampleConfig)
EVALUATE = Command("vae evaluate", "vae_training", EvaluateConfig)
COMMANDS = (TRAIN, SAMPLE, EVALUATE)
