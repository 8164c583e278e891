"""Typed configs of the captions stage: ``caption finetune``, ``infer``, ``merge`` and ``evaluate``.

One dataclass per section as the commands read it; the annotations are the schema
(:mod:`tagtune.config.typed`), the values and their defaults live only in the YAML files
(``caption_fine_tuning.yaml``, ``caption_inference.yaml`` and their groups). Each command's class
holds only what its code reads: ``caption infer`` reads where the tags sit in ``data`` but not
``data.limit`` (its own is ``infer.limit``), ``caption finetune`` reads the sampling settings of
``generation`` but not ``generation.batch_size``. Light to import: dataclasses and typing only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Annotated, Any, Literal

from tagtune.config.commands import Command
from tagtune.config.sections import Callbacks, Logger, Paths, TagColumns, TagData, Trainer
from tagtune.config.typed import Count, Range, Seed, to_dict
from tagtune.errors import ConfigError

__all__ = [
    "COMMANDS", "EVALUATE", "FINETUNE", "INFER", "MERGE", "CaptionModel", "EvaluateConfig", "EvaluateSection",
    "FinetuneConfig", "Generation", "InferConfig", "InferSection", "LlmModel", "MergeConfig", "Prompt",
    "Sampling", "TinyLlm", "llm_model",
]

NonNegative = Annotated[int, Range(min=0)]
Positive = Annotated[float, Range(above=0)]


# -- the model -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Quantization:
    """``model.quantization``: 4-bit loading through bitsandbytes (CUDA only)."""

    enabled: bool
    required: bool
    load_in_4bit: bool
    bnb_4bit_quant_type: Literal["nf4", "fp4"]
    bnb_4bit_use_double_quant: bool
    bnb_4bit_compute_dtype: str


@dataclass(frozen=True)
class TinyLlm:
    """``model.tiny``: what builds the tiny offline model (``model=caption/tiny``), and where it is cached."""

    vocab_size: Count
    hidden_size: Count
    intermediate_size: Count
    num_hidden_layers: Count
    num_attention_heads: Count
    num_key_value_heads: Count
    max_position_embeddings: Count
    seed: Seed
    cache_dir: str


@dataclass(frozen=True)
class LlmModel:
    """``model/caption/<llm>``: the causal LM ``caption finetune`` tunes (and ``model.backend=llm`` runs)."""

    name: str
    backend: Literal["llm"]
    checkpoint_dir: str | None
    revision: str | None
    trust_remote_code: bool
    dtype: str
    device_map: Any
    attn_implementation: str | None
    threads: Count | None
    quantization: Quantization
    tiny: TinyLlm | None = None  # model=caption/tiny only


@dataclass(frozen=True)
class CaptionModel:
    """``model/caption/*`` as ``caption infer`` reads it: any caption backend's settings.

    ``backend`` names a member of the ``caption_backends`` family (checked when it is loaded, with
    "did you mean"); each member reads its own keys, present only in its options' YAML.
    """

    name: str
    backend: str
    threads: Count | None
    # the llm backend's (model=caption/tiny, caption/llama_3.1_8b_instruct ...)
    checkpoint_dir: str | None = None
    revision: str | None = None
    trust_remote_code: bool | None = None
    dtype: str | None = None
    device_map: Any = None
    attn_implementation: str | None = None
    quantization: Quantization | None = None
    tiny: TinyLlm | None = None
    # the baselines' (model=caption/template, caption/concat)
    opening: str | None = None
    subject_category: str | None = None
    subject: str | None = None
    templates: dict[str, str] | None = None
    shuffle: bool | None = None
    # a third-party backend's own settings (+model.options.NAME=VALUE)
    options: dict[str, Any] = field(default_factory=dict)


def given(section: Any) -> dict[str, Any]:
    """A section's keys as its YAML gave them: optional keys left out when absent (``None``, ``{}``).

    The baselines' provenance hashes the model section this way, so the hash covers exactly the
    keys of the option's YAML file, whichever backend's keys the class also declares.
    """
    out = {}
    for f in fields(section):
        value = to_dict(getattr(section, f.name))
        optional = f.default is None or f.default_factory is dict
        if not (optional and value in (None, {})):
            out[f.name] = value
    return out


_LLM_NEEDS = ("trust_remote_code", "dtype", "quantization")


def llm_model(model: CaptionModel) -> LlmModel:
    """The LLM's settings of an infer model section; one line naming a key the LLM needs and the YAML lacks."""
    for key in _LLM_NEEDS:
        if getattr(model, key) is None:
            raise ConfigError(f"model.{key}: missing: the llm caption backend reads it", key=f"model.{key}",
                              hint="start from an LLM option such as model=caption/tiny or model=caption/llama_3.1_8b_instruct")
    return LlmModel(name=model.name, backend="llm", checkpoint_dir=model.checkpoint_dir, revision=model.revision,
                    trust_remote_code=bool(model.trust_remote_code), dtype=str(model.dtype), device_map=model.device_map,
                    attn_implementation=model.attn_implementation, threads=model.threads,
                    quantization=model.quantization, tiny=model.tiny)


# -- prompt and generation -----------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """``prompt/``: the system text and the user template (with ``{tags}``), in one of five formats."""

    format: Literal["plain", "llama3", "mistral", "chatml", "chat"]
    tag_style: Literal["list", "categories"]
    system: str
    user_template: str
    response_prefix: str

    def __post_init__(self) -> None:
        if "{tags}" not in self.user_template:
            raise ConfigError("prompt.user_template must contain {tags}", key="prompt.user_template",
                              hint='e.g. prompt.user_template="Tags: {tags}"')


@dataclass(frozen=True)
class Sampling:
    """``generation/caption``: how a caption is drawn (``caption finetune``'s sample captions too)."""

    max_new_tokens: Count
    min_new_tokens: NonNegative | None
    do_sample: bool
    temperature: Positive
    top_k: NonNegative | None
    top_p: Annotated[float, Range(above=0, max=1)] | None
    repetition_penalty: Positive | None
    no_repeat_ngram_size: NonNegative | None
    stop_strings: list[str]


@dataclass(frozen=True)
class Generation(Sampling):
    """``generation/caption`` as ``caption infer`` reads it: also how many prompts go in one batch."""

    batch_size: Count


# -- caption finetune ----------------------------------------------------------------------------

@dataclass(frozen=True)
class PairData(TagData):
    """``data/caption``: the tag/caption pairs to fine-tune on."""

    caption_column: str | None
    max_length: Annotated[int, Range(min=8)]


@dataclass(frozen=True)
class Lora:
    """``lora/``: the PEFT LoRA adapter."""

    r: Count
    lora_alpha: Positive
    lora_dropout: Annotated[float, Range(min=0, max=0.95)]
    target_modules: Any
    bias: Literal["none", "all", "lora_only"]


@dataclass(frozen=True)
class Optimizer:
    """``optimizer``: AdamW."""

    lr: Positive
    weight_decay: Annotated[float, Range(min=0)]
    betas: list[Annotated[float, Range(min=0, max=1)]]


@dataclass(frozen=True)
class Scheduler:
    """``scheduler``: linear warm-up, then cosine, linear or constant."""

    name: Literal["cosine", "linear", "constant"]
    warmup_ratio: Annotated[float, Range(min=0, max=1)]


@dataclass(frozen=True)
class FinetuneSection:
    """``finetune``: where the adapter goes, resuming, sample captions, gradient checkpointing."""

    output: str
    resume: str | None
    sample_captions: NonNegative
    gradient_checkpointing: bool


@dataclass(frozen=True)
class FinetuneConfig:
    """``tagtune caption finetune``."""

    task_name: str
    seed: Seed
    paths: Paths
    data: PairData
    model: LlmModel
    prompt: Prompt
    generation: Sampling
    lora: Lora
    optimizer: Optimizer
    scheduler: Scheduler
    trainer: Trainer
    callbacks: Callbacks
    logger: Logger
    finetune: FinetuneSection


# -- caption infer -------------------------------------------------------------------------------

@dataclass(frozen=True)
class InferData(TagColumns):
    """``data`` as ``caption infer`` reads it: where the tags (and a caption to keep aside) sit in the input."""

    caption_column: str | None


@dataclass(frozen=True)
class InferSection:
    """``infer``: the tag sets to caption, the output, resuming, sharding and lint."""

    input: str | None
    output: str | None
    limit: Count | None
    overwrite: bool
    shard: str | None
    lint: Literal["off", "flag", "retry"]
    lint_retries: Annotated[int, Range(min=0, max=10)]


@dataclass(frozen=True)
class InferConfig:
    """``tagtune caption infer``."""

    task_name: str
    seed: Seed
    device: str
    paths: Paths
    data: InferData
    model: CaptionModel
    prompt: Prompt
    generation: Generation
    infer: InferSection


# -- caption merge -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunDir:
    """``paths`` as ``caption merge`` reads it: the folder holding the shard parts (DIR)."""

    output_dir: str


@dataclass(frozen=True)
class MergeConfig:
    """``tagtune caption merge``."""

    paths: RunDir


# -- caption evaluate ----------------------------------------------------------------------------

@dataclass(frozen=True)
class BertScore:
    enabled: bool
    model: str
    revision: str | None
    layer: Count


@dataclass(frozen=True)
class Mauve:
    enabled: bool
    model: str


@dataclass(frozen=True)
class EvaluateSection:
    """``evaluate/caption``: the file to score, its columns, references, and which metrics run."""

    input: str | None
    reference: str | None
    train: str | None
    output: str | None
    taxonomy_path: str | None
    tags_column: str | None
    caption_column: str | None
    reference_column: str | None
    protocol: Literal["lp-musiccaps"]
    bleu: bool
    rouge: bool
    meteor: bool
    bertscore: BertScore
    mauve: Mauve
    embedding: bool
    distinct_n: list[Count]
    lint: bool


@dataclass(frozen=True)
class EvaluateConfig:
    """``tagtune caption evaluate``."""

    task_name: str
    paths: Paths
    evaluate: EvaluateSection


FINETUNE = Command("caption finetune", "caption_fine_tuning", FinetuneConfig)
INFER = Command("caption infer", "caption_inference", InferConfig)
MERGE = Command("caption merge", "caption_inference", MergeConfig)
EVALUATE = Command("caption evaluate", "caption_inference", EvaluateConfig)
# INFER first: a setting only a sibling reads is checked against the first sibling that reads it,
# and infer's model section takes every backend (finetune's takes the LLM only).
COMMANDS = (INFER, MERGE, EVALUATE, FINETUNE)
