"""Typed schemas for the main configs: every key, its type and its allowed range.

:func:`validate` runs right after composition, so a wrong type (``generation.batch_size=abc``),
an out-of-range value (``-n -5``, ``temperature=nan``) or an unknown key (``+generation.temprature``,
naming the closest real key) fails at compose time with one line and exit code 2, before any
model loads. The schemas hold types and ranges only; the defaults stay in the YAML files.

A preset of a stage may set keys for either of the stage's commands (``preset/caption`` serves
``caption finetune`` and ``caption infer``): a top-level section that belongs to a sibling main
config is checked against that config's schema and then dropped from this command's config.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tagtune.errors import ConfigError


class _Bad(Exception):
    """A value that does not fit its field (the message says what was expected)."""


class Field:
    """A leaf of the schema. ``null`` allows None; ``optional`` allows the key to be absent."""

    what = "a value"

    def __init__(self, *, null: bool = False, optional: bool = False):
        self.null = null
        self.optional = optional

    def check(self, value: Any) -> Any:
        if value is None:
            if self.null:
                return None
            raise _Bad(f"expected {self.what}, got null")
        return self.convert(value)

    def convert(self, value: Any) -> Any:
        return value


class AnyValue(Field):
    """No check (Lightning's ``devices``, LoRA's ``target_modules``: several types are valid)."""

    def check(self, value: Any) -> Any:
        return value


def _bound(what: str, lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{what} in [{lo:g}, {hi:g}]" if hi < 1e6 else f"{what} >= {lo:g}, below 2^{int(hi).bit_length()}"
    if lo is not None:
        return f"{what} >= {lo:g}"
    if hi is not None:
        return f"{what} <= {hi:g}"
    return what


class Int(Field):
    def __init__(self, min: int | None = None, max: int | None = None, **kw: Any):
        super().__init__(**kw)
        self.min, self.max = min, max
        self.what = _bound("an integer", min, max)

    def convert(self, value: Any) -> int:
        if isinstance(value, bool):
            raise _Bad(f"expected {self.what}, got {value!r}")
        if isinstance(value, str):  # values of CLI flags arrive as text
            try:
                value = int(value.strip())
            except ValueError:
                raise _Bad(f"expected {self.what}, got {value!r}") from None
        if not isinstance(value, int):
            raise _Bad(f"expected {self.what}, got {value!r}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise _Bad(f"expected {self.what}, got {value}")
        return value


SEED_MAX = 2**32 - 1  # what every RNG takes (torch, numpy, random)


class Float(Field):
    """A finite number (ints accepted); ``above`` is an exclusive lower bound."""

    def __init__(self, min: float | None = None, max: float | None = None, above: float | None = None, **kw: Any):
        super().__init__(**kw)
        self.min, self.max, self.above = min, max, above
        self.what = f"a number > {above:g}" if above is not None else _bound("a number", min, max)
        if above is not None and max is not None:
            self.what += f" and <= {max:g}"

    def convert(self, value: Any) -> float:
        if isinstance(value, bool):
            raise _Bad(f"expected {self.what}, got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _Bad(f"expected {self.what}, got {value!r}") from None
        if not isinstance(value, (int, float)):
            raise _Bad(f"expected {self.what}, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise _Bad(f"expected a finite number, got {value}")
        too_low = (self.min is not None and value < self.min) or (self.above is not None and value <= self.above)
        if too_low or (self.max is not None and value > self.max):
            raise _Bad(f"expected {self.what}, got {value:g}")
        return value


class Bool(Field):
    what = "true or false"

    def convert(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise _Bad(f"expected true or false, got {value!r}")


class Str(Field):
    def __init__(self, choices: tuple[str, ...] | None = None, **kw: Any):
        super().__init__(**kw)
        self.choices = choices
        self.what = "one of " + ", ".join(choices) if choices else "text"

    def convert(self, value: Any) -> str:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not self.choices:
            return str(value)  # a path or name that happens to look like a number
        if not isinstance(value, str):
            raise _Bad(f"expected {self.what}, got {value!r}")
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            raise _Bad(f"expected {self.what}, got {value!r}" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return value


class List(Field):
    def __init__(self, item: Field, **kw: Any):
        super().__init__(**kw)
        self.item = item
        self.what = f"a list of {item.what}"

    def convert(self, value: Any) -> list[Any]:
        if not isinstance(value, (list, tuple)):
            raise _Bad(f"expected {self.what}, got {value!r}")
        return [self.item.check(v) for v in value]


class Dict(Field):
    """A free mapping (``data.category_columns``, ``dataset.splits``) with typed values."""

    def __init__(self, value: Field | None = None, **kw: Any):
        super().__init__(**kw)
        self.value = value or AnyValue()
        self.what = "a mapping"

    def convert(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _Bad(f"expected {self.what}, got {value!r}")
        return {str(k): self.value.check(v) for k, v in value.items()}


Extra = Callable[[str, Any], Any]  # (key, value) -> checked value, or raises _Bad


class Section(Field):
    """A mapping with declared keys; ``extra`` checks keys that are not declared (None: refused)."""

    what = "a mapping"

    def __init__(self, fields: Mapping[str, Field], *, extra: Extra | None = None, **kw: Any):
        super().__init__(**kw)
        self.fields = dict(fields)
        self.extra = extra

    def with_fields(self, **more: Field) -> Section:
        return Section({**self.fields, **more}, extra=self.extra, null=self.null, optional=self.optional)

    def convert(self, value: Any) -> dict[str, Any]:
        raise AssertionError("sections are walked by _walk")


def S(**fields: Field) -> Section:
    return Section(fields)


def _walk(spec: Section, value: Any, prefix: str, partial: bool = False) -> dict[str, Any]:
    """Check a mapping against a section; errors name the dotted key. ``partial``: keys may be missing."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {value!r}", key=prefix or None)
    out: dict[str, Any] = {}
    for name, item in value.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        field = spec.fields.get(str(name))
        try:
            if field is None:
                if spec.extra is None:
                    raise _unknown_key(key, spec, prefix)
                out[name] = spec.extra(str(name), item)
            elif isinstance(field, Section) and item is not None:
                out[name] = _walk(field, item, key, partial)
            else:
                out[name] = field.check(item)
        except _Bad as exc:
            raise ConfigError(f"{key}: {exc}", key=key) from None
    for name, field in spec.fields.items():
        if name not in value and not field.optional and not partial:
            key = f"{prefix}.{name}" if prefix else name
            raise ConfigError(f"missing key '{key}'", key=key, hint="add it to your config, or start from `tagtune config cp`")
    return out


def _unknown_key(key: str, spec: Section, prefix: str) -> ConfigError:
    names = [f"{prefix}.{n}" if prefix else n for n in spec.fields]
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "see `tagtune config show` for the valid keys"
    return ConfigError(f"unknown config key '{key}': nothing reads it", key=key, hint=hint)


# -- the shared pieces ---------------------------------------------------------------------------

def _lightning_trainer_arg(name: str, value: Any) -> Any:
    """Keys under ``trainer`` that tagtune does not declare go to ``lightning.Trainer`` as they are."""
    import inspect

    import lightning

    params = inspect.signature(lightning.Trainer.__init__).parameters
    if name not in params:
        close = difflib.get_close_matches(name, list(params), n=1)
        raise _Bad(
            "not an argument of lightning.Trainer" + (f" (did you mean 'trainer.{close[0]}'?)" if close else "")
        )
    return value


SEED = Int(min=0, max=SEED_MAX)
PATH = Str(null=True)
PATHS = S(root_dir=Str(), run_id=Str(), output_dir=Str(), cache_dir=Str())
COUNT = Int(min=1, null=True)
SHARD = Str(null=True)
DEVICE = Str()

TRAINER = Section(
    {
        "accelerator": Str(), "devices": AnyValue(), "precision": AnyValue(), "max_epochs": Int(min=-1),
        "max_steps": Int(min=-1), "min_epochs": Int(min=0, null=True), "gradient_clip_val": Float(min=0, null=True),
        "accumulate_grad_batches": Int(min=1), "val_check_interval": AnyValue(),
        "check_val_every_n_epoch": Int(min=1, null=True), "log_every_n_steps": Int(min=1),
        "deterministic": AnyValue(), "strategy": AnyValue(), "num_nodes": Int(min=1),
    },
    extra=_lightning_trainer_arg,
)
_CKPT = S(enabled=Bool(), monitor=Str(null=True), mode=Str(choices=("min", "max")), save_top_k=Int(min=-1),
          save_last=Bool())
_STOP = S(enabled=Bool(), monitor=Str(), mode=Str(choices=("min", "max")), patience=Int(min=0), min_delta=Float(min=0))
CALLBACKS = S(model_checkpoint=_CKPT, early_stopping=_STOP, progress_bar=S(enabled=Bool()))
LOGGER = Section({
    "name": Str(choices=("csv", "wandb", "none")), "project": Str(optional=True),
    "entity": Str(null=True, optional=True), "offline": Bool(optional=True), "log_model": Bool(optional=True),
})

TAG_DATA = S(
    path=PATH, dataset_name=Str(null=True), dataset_split=Str(), taxonomy_path=Str(), tags_column=Str(null=True),
    category_columns=Dict(Str(), null=True), val_fraction=Float(min=0, max=0.99), test_fraction=Float(min=0, max=0.99),
    limit=COUNT, split_seed=SEED, batch_size=Int(min=1), num_workers=Int(min=0),
)

# -- tags stage ----------------------------------------------------------------------------------

VAE_TRAINING = S(
    task_name=Str(), seed=SEED, data=TAG_DATA, paths=PATHS, trainer=TRAINER, callbacks=CALLBACKS, logger=LOGGER,
    model=S(latent_dim=Int(min=1), hidden_dim=Int(min=1), num_layers=Int(min=1), dropout=Float(min=0, max=0.95),
            batch_norm=Bool(), beta=Float(min=0), learning_rate=Float(above=0), weight_decay=Float(min=0),
            max_set_size=COUNT, threads=COUNT),
    loss=S(bce_weight=Float(min=0), kld_weight=Float(min=0), size_weight=Float(min=0), free_bits=Float(min=0),
           kl_warmup_epochs=Int(min=0)),
    train=S(output=Str(), resume=PATH),
    sample=S(
        model=PATH, output=PATH, taxonomy_path=PATH, num_samples=Int(min=0), batch_size=Int(min=1),
        temperature=Float(min=0), threshold=Float(min=0, max=1), mode=Str(choices=("sized", "bernoulli", "threshold")),
        prior=Str(choices=("aggregate", "normal")), require=List(Str()), forbid=List(Str()),
        category_min=AnyValue(), category_max=AnyValue(), min_tags=Int(min=0), max_tags=Int(min=0, null=True),
        dedupe=Bool(), max_attempts=Int(min=1), rules=Bool(), min_per_tag=Int(min=1, null=True), quotas=Dict(Int(min=0)),
        min_tag_probability=Float(min=0, max=1), skip_absent=Bool(), counterfactual=Int(min=0), concepts=List(Str()),
    ),
    evaluate=S(
        input=PATH, reference=PATH, train=PATH, taxonomy_path=PATH, model=PATH, tags_column=Str(null=True),
        k=Int(min=1), subsample=Int(min=2, null=True), repeats=Int(min=1), output=PATH, plots=Bool(), plots_dir=PATH,
    ),
)

# -- captions stage ------------------------------------------------------------------------------

_QUANT = S(enabled=Bool(), required=Bool(), load_in_4bit=Bool(), bnb_4bit_quant_type=Str(choices=("nf4", "fp4")),
           bnb_4bit_use_double_quant=Bool(), bnb_4bit_compute_dtype=Str())
_TINY_LLM = Section(
    {k: Int(min=1) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                             "num_attention_heads", "num_key_value_heads", "max_position_embeddings")}
    | {"seed": SEED, "cache_dir": Str()},
    optional=True,
)
_LLM_ONLY = dict(checkpoint_dir=Str(null=True, optional=True), revision=Str(null=True, optional=True),
                 trust_remote_code=Bool(optional=True), dtype=Str(optional=True), device_map=AnyValue(optional=True),
                 attn_implementation=Str(null=True, optional=True), quantization=Section(_QUANT.fields, optional=True))
CAPTION_MODEL = Section({
    "name": Str(), "backend": Str(choices=("llm", "template", "concat")), "threads": COUNT, "tiny": _TINY_LLM,
    **_LLM_ONLY,
    # the baselines' settings (model=caption/template, caption/concat)
    "opening": Str(optional=True), "subject_category": Str(optional=True), "subject": Str(optional=True),
    "templates": Dict(Str(), optional=True), "shuffle": Bool(optional=True),
})
PROMPT = S(format=Str(choices=("plain", "llama3", "mistral", "chatml", "chat")), tag_style=Str(choices=("list", "categories")),
           system=Str(), user_template=Str(), response_prefix=Str())
CAPTION_GENERATION = S(
    batch_size=Int(min=1), max_new_tokens=Int(min=1), min_new_tokens=Int(min=0, null=True), do_sample=Bool(),
    temperature=Float(above=0), top_k=Int(min=0, null=True), top_p=Float(above=0, max=1, null=True),
    repetition_penalty=Float(above=0, null=True), no_repeat_ngram_size=Int(min=0, null=True), stop_strings=List(Str()),
)
CAPTION_DATA = TAG_DATA.with_fields(caption_column=Str(null=True), max_length=Int(min=8))
_CAPTION_COMMON = dict(task_name=Str(), seed=SEED, paths=PATHS, data=CAPTION_DATA, model=CAPTION_MODEL, prompt=PROMPT,
                       generation=CAPTION_GENERATION)

CAPTION_FINE_TUNING = S(
    **_CAPTION_COMMON, trainer=TRAINER, callbacks=CALLBACKS, logger=LOGGER,
    lora=S(r=Int(min=1), lora_alpha=Float(above=0), lora_dropout=Float(min=0, max=0.95), target_modules=AnyValue(),
           bias=Str(choices=("none", "all", "lora_only"))),
    optimizer=S(lr=Float(above=0), weight_decay=Float(min=0), betas=List(Float(min=0, max=1))),
    scheduler=S(name=Str(choices=("cosine", "linear", "constant")), warmup_ratio=Float(min=0, max=1)),
    finetune=S(output=Str(), resume=PATH, sample_captions=Int(min=0), gradient_checkpointing=Bool()),
)
CAPTION_INFERENCE = S(
    **_CAPTION_COMMON, device=DEVICE,
    infer=S(input=PATH, output=PATH, limit=COUNT, overwrite=Bool(), shard=SHARD,
            lint=Str(choices=("off", "flag", "retry")), lint_retries=Int(min=0, max=10)),
    evaluate=S(
        input=PATH, reference=PATH, train=PATH, output=PATH, taxonomy_path=PATH, tags_column=Str(null=True),
        caption_column=Str(null=True), reference_column=Str(null=True), protocol=Str(choices=("lp-musiccaps",)),
        bleu=Bool(), rouge=Bool(), meteor=Bool(),
        bertscore=S(enabled=Bool(), model=Str(), revision=Str(null=True), layer=Int(min=1)),
        mauve=S(enabled=Bool(), model=Str()), embedding=Bool(), distinct_n=List(Int(min=1)), lint=Bool(),
    ),
)

# -- audio stage ---------------------------------------------------------------------------------

_BPM = Float(min=20, max=400)
TAGMAP = S(tempo_bpm=Dict(List(_BPM)), default_bpm=List(_BPM), feels=Dict(Str(choices=("steady", "syncopated"))),
           instruments=Dict(Str()))
VERIFICATION = S(
    input=PATH, output=PATH, force=Bool(), shard=SHARD, batch_size=Int(min=1), max_seconds=Float(above=0, null=True), taxonomy=PATH,
    checkers=List(Str()),
    tempo=S(method=Str(choices=("tempo", "beat")), tolerance=Float(min=0, max=1), min_confidence=Float(min=0, max=1)),
    clap=S(categories=List(Str(), null=True), decision=Str(choices=("rank", "margin", "threshold")), top_k=Int(min=1),
           margin=Float(), threshold=Float(min=-1, max=1), cache=Bool(), templates=Dict(Str())),
    custom=Dict(),
)
_TINY_MUSICGEN = Section({"seed": SEED, "sampling_rate": Int(min=8000, max=192000), "cache_dir": Str()}, optional=True)
TTA_INFERENCE = S(
    task_name=Str(), seed=SEED, device=DEVICE, paths=PATHS,
    data=S(caption_column=Str(null=True), id_column=Str(null=True), duration_column=Str(null=True)),
    model=S(name=Str(), backend=Str(choices=("transformers", "audiocraft", "synth")), revision=Str(null=True),
            trust_remote_code=Bool(), dtype=Str(), threads=COUNT,
            tiny=_TINY_MUSICGEN, sample_rate=Int(min=8000, max=192000, optional=True),
            miss_rate=Float(min=0, max=1, optional=True)),
    tagmap=TAGMAP,
    verification=VERIFICATION,
    generation=S(
        batch_size=Int(min=1), duration=Float(above=0, max=3600, null=True), max_new_tokens=Int(min=1), do_sample=Bool(),
        temperature=Float(min=0), top_k=Int(min=0), top_p=Float(min=0, max=1), guidance_scale=Float(min=0),
        seeding=Str(choices=("per_sample", "exact")),
    ),
    generate=S(
        input=PATH, output=Str(), limit=COUNT, shard=SHARD, overwrite=Bool(), format=Str(choices=("wav", "flac")),
        subtype=Str(), normalize=Str(choices=("none", "peak", "loudness")), peak_db=Float(max=0), loudness_db=Float(max=0),
    ),
    evaluate=S(
        input=PATH, reference=PATH, output=PATH, clap_model=Str(), revision=Str(null=True), batch_size=Int(min=1),
        max_seconds=Float(above=0, null=True), self_test=Bool(),
        fad=S(backbones=List(Str(choices=("vggish", "pann", "encodec", "tiny"))), vggish_weights=PATH, pann_weights=PATH,
              encodec_model=Str(), inf_steps=Int(min=3), fixed_n=Int(min=2, null=True), repeats=Int(min=1),
              tiny=_TINY_MUSICGEN),
        tiny=Section({"seed": SEED, "cache_dir": Str()}, optional=True),
    ),
)

# -- pipeline ------------------------------------------------------------------------------------

_STAGE = dict(preset=Str(null=True), overrides=List(Str()))
PIPELINE = S(
    task_name=Str(), seed=SEED, num_items=Int(min=1), paths=PATHS, output=Str(), tags=PATH, captions=PATH,
    stages=List(Str(choices=("vae", "caption", "tta", "verify"))),
    vae=S(**_STAGE, model=PATH),
    caption=S(**_STAGE, finetune=Bool(), finetune_overrides=List(Str()), adapter=PATH),
    tta=S(**_STAGE),
    verify=S(policy=Str(choices=("keep", "rerender", "drop")), min_realisation=Float(min=0, max=1),
             max_attempts=Int(min=1, max=20), overrides=List(Str())),
    executor=AnyValue(),  # checked by tagtune.executors.config (the typed configs replace this module)
    dataset=S(splits=Dict(Float(min=0, max=1)), split_seed=SEED, name=Str(), license=Str(), attribution=Str(),
              input_licenses=Dict(Str()),
              exclude=List(Str()), exclude_ngram=Int(min=1, max=20), exclude_threshold=Float(above=0, max=1)),
)

SCHEMAS: dict[str, Section] = {
    "vae_training": VAE_TRAINING,
    "caption_fine_tuning": CAPTION_FINE_TUNING,
    "caption_inference": CAPTION_INFERENCE,
    "tta_inference": TTA_INFERENCE,
    "pipeline": PIPELINE,
}


def dig(data: Any, key: str) -> Any:
    """The value at a dotted key of nested mappings; None where any part is missing."""
    for part in key.split("."):
        data = data.get(part) if isinstance(data, Mapping) else None
    return data


def schema_for(config_name: str) -> tuple[Section, list[Section]]:
    """The schema of a main config (a user's ``vae_mine`` uses its stage's) and its siblings' schemas."""
    from tagtune.config.tree import stage_of

    if config_name in SCHEMAS:
        own = config_name
    else:
        stage = stage_of(config_name)
        own = next(n for n in SCHEMAS if n.startswith(stage + "_") or n == stage)
    stage = own.split("_", 1)[0]
    siblings = [s for n, s in SCHEMAS.items() if n != own and n.split("_", 1)[0] == stage]
    return SCHEMAS[own], siblings


def _field_at(spec: Section, key: str) -> Field | None:
    field: Field | None = spec
    for part in key.split("."):
        field = field.fields.get(part) if isinstance(field, Section) else None
    return field


def validate(config_name: str, data: Mapping[str, Any], first: Sequence[str] = ()) -> dict[str, Any]:
    """Check a resolved config (plain containers) and return it with values converted to their types.

    Args:
        first: Keys to check before the others (the ones set by flags: an error names them rather
            than a key that copies them, such as ``data.split_seed: ${seed}``).

    Raises:
        ConfigError: The first problem, naming its dotted key.
    """
    spec, siblings = schema_for(config_name)
    for key in first:
        field, value = _field_at(spec, key), dig(data, key)
        if field is not None and not isinstance(field, Section):
            try:
                field.check(value)
            except _Bad as exc:
                raise ConfigError(f"{key}: {exc}", key=key) from None
    data = dict(data)
    for name in [n for n in data if n not in spec.fields]:
        owner = next((s for s in siblings if name in s.fields), None)
        if owner is not None:  # a stage preset's setting for the stage's other command
            field = owner.fields[name]
            if isinstance(field, Section) and data[name] is not None:
                _walk(field, data[name], name, partial=True)
            else:
                try:
                    field.check(data[name])
                except _Bad as exc:
                    raise ConfigError(f"{name}: {exc}", key=name) from None
            del data[name]
    return _walk(spec, data, "")


def describe(config_name: str) -> list[tuple[str, str]]:
    """``(dotted key, what it must be)`` for every declared key of a main config (docs, errors)."""
    spec, _ = schema_for(config_name)
    out: list[tuple[str, str]] = []

    def walk(section: Section, prefix: str) -> None:
        for name, field in section.fields.items():
            key = f"{prefix}.{name}" if prefix else name
            if isinstance(field, Section):
                walk(field, key)
            else:
                what = field.what + (" or null" if field.null else "") + (" (optional)" if field.optional else "")
                out.append((key, what))
        if section.extra is not None:
            out.append((f"{prefix}.*", "any other argument of lightning.Trainer"))

    walk(spec, "")
    return out
