"""Typed configs of the audio stage: one class per command of ``tta_inference``, each with only what it reads.

``tta generate`` renders prompts (``data``, ``model``, ``tagmap``, ``generation``, ``generate``) and
records, beside its clips, how they are meant to be judged (the CLAP model of ``evaluate`` and the
``verification`` settings), so that ``tta verify DIR`` later judges them as the preset that made
them intended. ``tta merge`` reads only the folder; ``tta evaluate`` the CLAP model and the FAD
settings; ``tta verify`` the checkers, the CLAP model and the tagmap. Annotations are the schema
(:mod:`tagtune.config.typed`); the values and their defaults live only in ``config/``. Light to
import: dataclasses and typing only (the CLI imports it at top level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from tagtune.config.commands import Command
from tagtune.config.sections import Paths
from tagtune.config.typed import Count, Range, Seed

__all__ = ["COMMANDS", "EVALUATE", "GENERATE", "MERGE", "VERIFY", "Clap", "EvaluateConfig", "Evaluate", "Fad",
           "GenerateConfig", "Generate", "Generation", "KeySettings", "Kld", "MergeConfig", "PromptColumns", "Tagmap",
           "TinyClap", "TinyMusicgen", "TtaModel", "Verification", "VerificationSettings", "VerifyConfig"]

SampleRate = Annotated[int, Range(min=8000, max=192000)]
Bpm = Annotated[float, Range(min=20, max=400)]
Fraction = Annotated[float, Range(min=0, max=1)]
Decibels = Annotated[float, Range(max=0)]
Seconds = Annotated[float, Range(above=0)]


@dataclass(frozen=True)
class TinyMusicgen:
    """The offline tiny MusicGen (``model.tiny``) and the FAD backbone built from its EnCodec (``evaluate.fad.tiny``)."""

    seed: Seed
    sampling_rate: SampleRate
    cache_dir: str


@dataclass(frozen=True)
class TinyClap:
    """The offline tiny CLAP (``evaluate.tiny``), used when ``evaluate.clap_model=tiny``."""

    seed: Seed
    cache_dir: str


@dataclass(frozen=True)
class PromptColumns:
    """``data/tta``: where a prompts file keeps its captions, ids and durations."""

    caption_column: str | None
    id_column: str | None
    duration_column: str | None


@dataclass(frozen=True)
class TtaModel:
    """``model/tta``: the audio backend (``backend``: a built-in, ``package.module:Class`` or an entry point)
    and what it loads. ``tiny`` exists only for the tiny MusicGen, ``compile`` only for the transformers
    backend, ``sample_rate``/``miss_rate`` only for the synth renderer; a third-party backend reads its own
    settings from ``options``. ``revision``, ``trust_remote_code``, ``dtype`` and ``threads`` are MusicGen's
    (the transformers and audiocraft backends): None when a model config leaves them out, so a third-party
    backend's YAML needs only ``name``, ``backend`` and ``options``."""

    name: str
    backend: str
    revision: str | None = None
    trust_remote_code: bool | None = None
    dtype: str | None = None
    threads: Count | None = None
    tiny: TinyMusicgen | None = None
    compile: bool | None = None
    sample_rate: SampleRate | None = None
    miss_rate: Fraction | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tagmap:
    """``tagmap/``: tempo tags as BPM ranges, instrument tags as synth voices (the synth renders them,
    ``tta verify`` judges them)."""

    tempo_bpm: dict[str, list[Bpm]]
    default_bpm: list[Bpm]
    feels: dict[str, Literal["steady", "syncopated"]]
    instruments: dict[str, str]


@dataclass(frozen=True)
class Generation:
    """``generation/tta``: MusicGen's sampling settings and the batch size."""

    batch_size: Count
    duration: Annotated[float, Range(above=0, max=3600)] | None
    max_new_tokens: Count
    do_sample: bool
    temperature: Annotated[float, Range(min=0)]
    top_k: Annotated[int, Range(min=0)]
    top_p: Fraction
    guidance_scale: Annotated[float, Range(min=0)]
    seeding: Literal["per_sample", "exact"]


@dataclass(frozen=True)
class Generate:
    """``generate``: the prompts file, the output folder, this worker's shard and how clips are written."""

    input: str | None
    output: str
    limit: Count | None
    shard: str | None
    overwrite: bool
    format: Literal["wav", "flac"]
    subtype: str
    normalize: Literal["none", "peak", "loudness"]
    peak_db: Decibels
    loudness_db: Decibels  # LUFS (integrated, ITU-R BS.1770-4) for normalize=loudness
    true_peak_db: Decibels | None  # dBTP ceiling for normalize=loudness (None: none)


@dataclass(frozen=True, kw_only=True)
class Clap:
    """The CLAP model of ``evaluate``: ``tta evaluate`` scores with it, the ``clap`` checker judges with it."""

    clap_model: str
    revision: str | None
    max_seconds: Seconds | None
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    tiny: TinyClap | None = None


@dataclass(frozen=True)
class TempoSettings:
    method: Literal["tempo", "beat"]
    tolerance: Fraction
    min_confidence: Fraction


@dataclass(frozen=True)
class ClapSettings:
    categories: list[str] | None
    decision: Literal["rank", "margin", "threshold"]
    top_k: Count
    margin: float
    threshold: Annotated[float, Range(min=-1, max=1)]
    cache: bool
    templates: dict[str, str]


@dataclass(frozen=True)
class KeySettings:
    """``verification.key``: the key estimate stored with every clip (``facts`` has ``key``)."""

    profile: Literal["krumhansl", "temperley"]
    min_confidence: Fraction


@dataclass(frozen=True, kw_only=True)
class VerificationSettings:
    """How clips are judged (``verification/``): the checkers in order and each one's settings;
    ``custom.<name>`` holds a third-party checker's settings."""

    batch_size: Count
    max_seconds: Seconds | None
    taxonomy: str | None
    checkers: list[str]
    facts: list[Literal["bpm", "key"]]
    tempo: TempoSettings
    key: KeySettings
    clap: ClapSettings
    custom: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class Verification(VerificationSettings):
    """``verification``: the settings plus the folder, the report and this worker's shard."""

    input: str | None
    output: str | None
    force: bool
    shard: str | None


@dataclass(frozen=True)
class Fad:
    """``evaluate.fad``: the standard FAD backbones (a built-in, ``package.module:Class`` or an entry point).
    Every backbone is built from this whole section; a third-party one reads its settings from ``options``
    (a free mapping, by convention keyed by the backbone's name)."""

    backbones: list[str]
    vggish_weights: str | None
    pann_weights: str | None
    passt_weights: str | None
    encodec_model: str
    inf_steps: Annotated[int, Range(min=3)]
    fixed_n: Annotated[int, Range(min=2)] | None
    repeats: Count
    tiny: TinyMusicgen | None = None
    options: dict[str, Any] = field(default_factory=dict)  # a third-party backbone's settings (it gets the section)


@dataclass(frozen=True)
class Kld:
    """``evaluate.kld``: KL divergence of label distributions; ``classifier`` names a member of the FAD
    backbones family that also classifies (``passt``; ``tiny`` offline), None skips it."""

    classifier: str | None


@dataclass(frozen=True, kw_only=True)
class Evaluate(Clap):
    """``evaluate``: the folder to score, the reference audio, where the scores go, the CLAP model and FAD."""

    input: str | None
    reference: str | None
    output: str | None
    batch_size: Count
    self_test: bool
    normalize_lufs: Annotated[float, Range(max=0)] | None
    fad: Fad
    kld: Kld


@dataclass(frozen=True)
class GenerateConfig:
    """``tta generate``. ``evaluate`` (the CLAP model) and ``verification`` are not used to render: they
    are recorded in ``DIR/config.yaml``, and ``tta verify DIR`` judges the clips with them."""

    task_name: str
    seed: Seed
    device: str
    paths: Paths
    data: PromptColumns
    model: TtaModel
    tagmap: Tagmap
    generation: Generation
    generate: Generate
    evaluate: Clap
    verification: VerificationSettings


@dataclass(frozen=True)
class MergeTarget:
    output: str


@dataclass(frozen=True)
class MergeConfig:
    """``tta merge DIR``: only the folder (``generate.output``)."""

    generate: MergeTarget


@dataclass(frozen=True)
class EvaluateConfig:
    """``tta evaluate DIR``: CLAP score and FAD (``seed``: FAD-inf and fixed-n draws)."""

    seed: Seed
    device: str
    paths: Paths
    evaluate: Evaluate


@dataclass(frozen=True)
class VerifyConfig:
    """``tta verify DIR``: the checkers, the CLAP model the ``clap`` checker uses, the tagmap's tempo ranges."""

    device: str
    paths: Paths
    tagmap: Tagmap
    evaluate: Clap
    verification: Verification


GENERATE = Command("tta generate", "tta_inference", GenerateConfig)
MERGE = Command("tta merge", "tta_inference", MergeConfig)
EVALUATE = Command("tta evaluate", "tta_inference", EvaluateConfig)
VERIFY = Command("tta verify", "tta_inference", VerifyConfig)
# The command reading the most of a shared section comes first: a preset's keys for a section this
# command does not read are checked against the first sibling that declares it.
COMMANDS = (EVALUATE, VERIFY, GENERATE, MERGE)
