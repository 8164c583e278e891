"""Batched, resumable, shardable caption generation: ``tagtune caption infer``.

Tag sets are read by the one tag-set reader (:mod:`tagtune.records.reader`, file:line:field errors), this
worker's shard is selected, ids already captioned in the output are skipped, and the rest is
captioned in batches with left padding. Each finished batch is appended to the JSONL output in
whole lines (so a SIGKILL loses at most the batch in flight) as :class:`~tagtune.records.rows.CaptionRow`
lines: every input field kept, ``caption`` and ``provenance.caption`` added.

Sampling is seeded per row (:mod:`tagtune.models.sampling`): each tag set draws its tokens from its own
generator, seeded from ``seed`` and the row's id (a counterfactual pair's ``pair_id``, so both
members of a pair draw alike). A row's caption therefore does not depend on which rows share
its batch, the batch size, the shard or whether the run was resumed -- up to floating-point
differences between padded and unpadded attention, which can flip a draw that lands on a
probability boundary (rare in float32 on CPU; more frequent in half precision on GPU).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption.clean import clean_caption
from tagtune.caption.data import order_tags
from tagtune.caption.prompts import end_markers, render_prompt
from tagtune.errors import ConfigError
from tagtune.models.sampling import row_seed
from tagtune.records.rows import CaptionRow, TagSetRow
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter


@dataclass
class InferResult:
    """What ``infer`` did; ``seconds`` covers the batch loop (tokenize, generate, clean, write), of
    which ``generate_seconds`` was spent in ``model.generate`` and ``write_seconds`` in fsync'ed appends."""

    output: str
    total: int
    owned: int
    written: int = 0
    already_done: int = 0
    empty: int = 0
    linted: int = 0  # captions that still break a lint rule (infer.lint=flag|retry)
    shard: str = "0/1"
    model: str = ""
    adapter: str | None = None
    quantized: bool = False
    load_seconds: float = 0.0
    seconds: float = 0.0
    generate_seconds: float = 0.0
    write_seconds: float = 0.0
    notices: list[str] = field(default_factory=list)

    @property
    def captions_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def seed_of(row: TagSetRow, seed: int) -> int:
    """A row's sampling seed; both members of a counterfactual pair share their pair's."""
    return row_seed(seed, row.pair_id or row.id)


class CaptionGenerator:
    """Tag sets -> cleaned captions for a loaded model, with the generation config applied."""

    def __init__(self, loaded: Any, prompt_cfg: Mapping[str, Any], gen_cfg: Mapping[str, Any], seed: int,
                 taxonomy: Taxonomy):
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.prompt_cfg, self.gen_cfg, self.seed, self.taxonomy = prompt_cfg, gen_cfg, int(seed), taxonomy
        tok = self.tokenizer
        self.markers = end_markers(prompt_cfg, tok)
        self.stop_strings = [s for s in gen_cfg["stop_strings"] if s]
        self.special = [t for t in getattr(tok, "all_special_tokens", []) if t]
        vocab = tok.get_vocab()
        eos = {tok.eos_token_id} | {vocab[m] for m in self.markers if m in vocab}
        gc_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos |= set(gc_eos if isinstance(gc_eos, (list, tuple)) else [gc_eos])
        self.eos_ids = sorted(i for i in eos if i is not None)
        # Captions never contain special tokens: forbid all but the ones that end the answer.
        self.suppress = sorted(set(getattr(tok, "all_special_ids", [])) - set(self.eos_ids))

    def prompts(self, rows: Sequence[TagSetRow]) -> list[str]:
        out = []
        for row in rows:
            tags, cats = order_tags(row.tags, self.taxonomy)
            out.append(render_prompt(self.prompt_cfg, tags, self.tokenizer, cats))
        return out

    def generate_kwargs(self) -> dict[str, Any]:
        g = self.gen_cfg
        kw: dict[str, Any] = {"max_new_tokens": g["max_new_tokens"], "do_sample": False, "eos_token_id": self.eos_ids,
                              "pad_token_id": self.tokenizer.pad_token_id}
        if g["min_new_tokens"]:
            kw["min_new_tokens"] = g["min_new_tokens"]
        if g["repetition_penalty"] and g["repetition_penalty"] != 1.0:
            kw["repetition_penalty"] = g["repetition_penalty"]
        if g["no_repeat_ngram_size"]:
            kw["no_repeat_ngram_size"] = g["no_repeat_ngram_size"]
        if self.suppress:
            kw["suppress_tokens"] = self.suppress
        return kw

    def encode(self, prompts: Sequence[str]) -> Any:
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def generate(self, rows: Sequence[TagSetRow]) -> tuple[list[str], float]:
        """Captions for ``rows`` (one batch) and the seconds spent inside ``model.generate``."""
        import torch

        from tagtune.models.sampling import RowSeededSampler

        inputs = self.encode(self.prompts(rows))
        kwargs = self.generate_kwargs()
        g = self.gen_cfg
        kwargs["logits_processor"] = [RowSeededSampler(
            [seed_of(r, self.seed) for r in rows], g["max_new_tokens"], g["do_sample"], g["temperature"], g["top_k"], g["top_p"],
        )]
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        spent = time.perf_counter() - start
        texts = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
        prefix = str(self.prompt_cfg["response_prefix"] or "")
        return [clean_caption(t, self.markers, self.stop_strings, self.special, prefix) for t in texts], spent


def output_path(cfg: Any, shard: Any) -> tuple[Path, bool]:
    """The JSONL this worker writes and whether it was given explicitly (``-o``)."""
    explicit = cfg.infer.output
    path = Path(str(explicit)).expanduser() if explicit else Path(str(cfg.paths.output_dir)).expanduser() / "captions.jsonl"
    if shard.is_sharded:
        path = path.with_name(f"{path.stem}.{shard.tag}{path.suffix or '.jsonl'}")
    return path, bool(explicit)


def _check_output(out: Path, source: str) -> None:
    from tagtune.files.readers import resolve_path

    if out.is_dir():
        raise ConfigError(f"output {out} is a directory, not a file", key="infer.output",
                          hint="give a file name such as captions.jsonl")
    if out.exists() and out.resolve() == resolve_path(source).resolve():
        raise ConfigError(f"output {out} is the input file", key="infer.output",
                          hint="write the captions to another file; the input is read, never overwritten")
    from tagtune.files.runs import check_ours, first_line_has

    check_ours(out, "caption infer", first_line_has("provenance", "caption"))  # resume ours, never touch yours


def provenance(cfg: Any, loaded: Any) -> dict[str, Any]:
    """``provenance.caption`` of every row (the row's own ``seed`` is added per row)."""
    from omegaconf import OmegaConf

    from tagtune import __version__
    from tagtune.config.saved import config_hash

    def digest(section: Any) -> str:
        return config_hash(section, drop=())[:12]

    if loaded is None:  # a baseline: the caption is a function of the tags and these settings
        return {"model": str(cfg.model.name), "revision": f"tagtune:{__version__}", "adapter": None, "quantized": False,
                "prompt": f"{cfg.model.backend}:{digest(cfg.model)}", "generation": {}, "tagtune_version": __version__}
    return {
        "model": str(cfg.model.name), "revision": loaded.revision, "adapter": loaded.adapter, "quantized": loaded.quantized,
        "prompt": f"{cfg.prompt.format}:{digest(cfg.prompt)}",
        "generation": {k: v for k, v in OmegaConf.to_container(cfg.generation, resolve=True).items() if k != "batch_size"},
        "tagtune_version": __version__,
    }


def output_record(row: TagSetRow, caption: str, prov: dict[str, Any], seed: int, taxonomy: Taxonomy) -> dict[str, Any]:
    """The output line: the tag set's fields, ``caption`` (an input caption moves to ``reference_caption``)."""
    fields = {k: getattr(row, k) for k in ("id", "tags", "pair_id", "concept", "edit", "extra", "line")}
    out = CaptionRow(**fields, caption=caption, reference_caption=row.caption,
                     provenance={**row.provenance, "caption": {**prov, "seed": seed_of(row, seed)}})
    return out.to_record(taxonomy)


def infer(cfg: Any, reporter: Reporter = SILENT, loaded: Any = None) -> InferResult:
    """Caption every tag set of ``infer.input`` into a resumable JSONL (``infer.output``).

    Args:
        cfg: A composed ``caption_inference`` config.
        reporter: Receives progress and notes.
        loaded: An already loaded :class:`~tagtune.caption.model.LoadedModel` to reuse (the
            benchmark passes one); loaded from ``cfg.model`` when needed.

    Raises:
        InputError: Bad input lines, duplicate ids, a missing tags column.
        ConfigError: The output is the input or a directory.
        ModelNotFoundError: The model or adapter cannot be loaded.
    """
    from tagtune.config.saved import prepare_run_dir, sidecar_config
    from tagtune.files.resumable import JsonlAppender
    from tagtune.files.sharding import resolve_shard
    from tagtune.records.reader import read_file
    from tagtune.records.tagsets import columns_of

    shard = resolve_shard(cfg.infer.shard)
    if not cfg.infer.input:
        raise ConfigError("no input", key="infer.input", hint="pass a tags file (INPUT)")
    out, explicit = output_path(cfg, shard)
    _check_output(out, cfg.infer.input)
    taxonomy = Taxonomy.load(cfg.data.taxonomy_path)
    rows = list(read_file(cfg.infer.input, TagSetRow, taxonomy, columns_of(cfg.data), limit=cfg.infer.limit))
    mine = [r for r in rows if shard.owns(r.id)]
    if explicit:
        sidecar_config(cfg, out)
    else:
        prepare_run_dir(cfg, out.parent)
    result = InferResult(str(out), len(rows), len(mine), shard=str(shard), model=str(cfg.model.name),
                         adapter=cfg.model.get("checkpoint_dir"))
    with JsonlAppender(out, key="id", overwrite=cfg.infer.overwrite, done_when=_has_caption) as sink:
        todo = [r for r in mine if r.id not in sink.done]
        result.already_done = len(mine) - len(todo)
        if todo:
            _caption_all(cfg, todo, sink, result, taxonomy, reporter, loaded)
    return result


def _has_caption(record: dict[str, Any]) -> bool:
    return isinstance(record.get("caption"), str) and bool(record["caption"].strip())


def _generator(cfg: Any, taxonomy: Taxonomy, reporter: Reporter, loaded: Any, result: InferResult) -> tuple[Any, Any]:
    """The caption generator (the LLM, loaded once, or a baseline) and what it was (for provenance)."""
    if cfg.model.backend != "llm":
        from tagtune.caption.baselines import BaselineGenerator

        return BaselineGenerator(cfg.model, taxonomy, cfg.seed), None
    start = time.perf_counter()
    if loaded is None:
        from tagtune.caption.model import load_for_inference

        loaded = load_for_inference(cfg.model, cfg.device)
    result.load_seconds = time.perf_counter() - start
    result.quantized, result.notices = loaded.quantized, list(loaded.notices)
    for text in loaded.notices:
        reporter.note(text)
    return CaptionGenerator(loaded, cfg.prompt, cfg.generation, cfg.seed, taxonomy), loaded


def _linted(gen: Any, rows: list[TagSetRow], captions: list[str], cfg: Any) -> tuple[list[str], list[list[str]]]:
    """Lint the captions; with ``infer.lint=retry`` draw failing ones again (next seeds) up to the retries."""
    from tagtune.caption.lint import lint

    flags = [lint(c) for c in captions]
    if cfg.infer.lint != "retry":
        return captions, flags
    for attempt in range(1, cfg.infer.lint_retries + 1):
        redo = [i for i, f in enumerate(flags) if f and not rows[i].pair_id]  # pairs keep their shared seed
        if not redo:
            break
        gen.seed = cfg.seed + attempt  # the next seed of the schedule
        again, _ = gen.generate([rows[i] for i in redo])
        gen.seed = cfg.seed
        for i, caption in zip(redo, again, strict=True):
            found = lint(caption)
            if len(found) < len(flags[i]):
                captions[i], flags[i] = caption, found
    return captions, flags


def _caption_all(cfg: Any, todo: list[TagSetRow], sink: Any, result: InferResult, taxonomy: Taxonomy,
                 reporter: Reporter, loaded: Any) -> None:
    from tagtune.models.device import torch_threads

    gen, loaded = _generator(cfg, taxonomy, reporter, loaded, result)
    prov, batch_size = provenance(cfg, loaded), cfg.generation.batch_size
    loop_start = time.perf_counter()
    with torch_threads(cfg.model.threads), reporter.progress("captioning", total=len(todo), unit="captions") as task:
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            captions, spent = gen.generate(batch)
            if cfg.infer.lint != "off":
                captions, flags = _linted(gen, batch, captions, cfg)
                result.linted += sum(1 for f in flags if f)
            result.generate_seconds += spent
            result.empty += sum(1 for c in captions if not c)
            t_write = time.perf_counter()
            sink.append(output_record(r, c, prov, cfg.seed, taxonomy) for r, c in zip(batch, captions, strict=True))
            result.write_seconds += time.perf_counter() - t_write
            result.written += len(batch)
            task.advance(len(batch))
    result.seconds = time.perf_counter() - loop_start
