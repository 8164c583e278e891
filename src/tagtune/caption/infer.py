"""Batched, resumable, shardable caption generation: ``tagtune caption infer``.

Tag sets are read (with file:line:field errors), this worker's shard is selected, ids already in
the output are skipped, and the rest is captioned in batches with left padding. Each finished
batch is appended to the JSONL output in whole lines (so a SIGKILL loses at most the batch in
flight) with every input field kept and ``caption`` added.

Sampling is seeded per row: each tag set draws its tokens from its own random generator, seeded
from ``seed`` and the row's id. A row's caption therefore does not depend on which rows share
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
from tagtune.caption.data import TagInput, read_tag_inputs
from tagtune.caption.prompts import end_markers, render_prompt
from tagtune.errors import InputError


@dataclass
class InferResult:
    """What ``infer`` did; ``seconds`` covers the batch loop (tokenize, generate, clean, write), of
    which ``generate_seconds`` was spent in ``model.generate`` and ``write_seconds`` in fsync'ed appends."""

    output: str
    total: int
    owned: int
    written: int
    already_done: int
    empty: int = 0
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


def row_seed(seed: int, row_id: str) -> int:
    """The sampling seed of one row: stable across processes, batches and shards."""
    from tagtune.ids import stable_hash

    return stable_hash(f"{int(seed)}:{row_id}") & 0x7FFF_FFFF_FFFF_FFFF


def make_row_sampler(seeds: Sequence[int], temperature: float, top_k: int | None, top_p: float | None) -> Any:
    """A logits processor that samples each row with its own generator and forces that token.

    ``generate`` then runs greedily on the forced logits, so repetition penalty, n-gram blocking,
    minimum length and suppressed tokens (applied before this processor) still hold.
    """
    import torch
    from transformers import LogitsProcessor
    from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers: list[Any] = []
    if temperature and float(temperature) != 1.0:
        warpers.append(TemperatureLogitsWarper(float(temperature)))
    if top_k:
        warpers.append(TopKLogitsWarper(int(top_k)))
    if top_p is not None and float(top_p) < 1.0:
        warpers.append(TopPLogitsWarper(float(top_p)))

    class RowSampler(LogitsProcessor):
        def __init__(self) -> None:
            self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores = scores.float()
            for warp in warpers:
                scores = warp(input_ids, scores)
            cdf = torch.softmax(scores, dim=-1).cumsum(dim=-1)
            u = torch.stack([torch.rand((), generator=g) for g in self.generators]).to(cdf.device)
            u = (u * cdf[:, -1]).clamp_min(1e-12).unsqueeze(1)
            picked = torch.searchsorted(cdf, u).clamp_max(cdf.shape[-1] - 1)
            forced = torch.full_like(scores, float("-inf"))
            return forced.scatter_(1, picked, 0.0)

    return RowSampler()


class CaptionGenerator:
    """Prompts -> cleaned captions for a loaded model, with the generation config applied."""

    def __init__(self, loaded: Any, prompt_cfg: Mapping[str, Any], gen_cfg: Mapping[str, Any], seed: int):
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.device = loaded.device
        self.prompt_cfg = prompt_cfg
        self.gen_cfg = gen_cfg
        self.seed = int(seed)
        tok = self.tokenizer
        self.markers = end_markers(prompt_cfg, tok)
        self.stop_strings = [s for s in (gen_cfg.get("stop_strings") or []) if s]
        self.special = [t for t in getattr(tok, "all_special_tokens", []) if t]
        vocab = tok.get_vocab()
        eos = {tok.eos_token_id} | {vocab[m] for m in self.markers if m in vocab}
        gc_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos |= set(gc_eos if isinstance(gc_eos, (list, tuple)) else [gc_eos])
        self.eos_ids = sorted(i for i in eos if i is not None)
        # Captions never contain special tokens: forbid all but the ones that end the answer.
        self.suppress = sorted(set(getattr(tok, "all_special_ids", [])) - set(self.eos_ids))

    def prompts(self, items: Sequence[TagInput]) -> list[str]:
        return [render_prompt(self.prompt_cfg, it.tags, self.tokenizer, it.categories) for it in items]

    def generate_kwargs(self) -> dict[str, Any]:
        g = self.gen_cfg
        kw: dict[str, Any] = {
            "max_new_tokens": int(g.get("max_new_tokens", 128)),
            "do_sample": False,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if g.get("min_new_tokens"):
            kw["min_new_tokens"] = int(g["min_new_tokens"])
        if g.get("repetition_penalty") and float(g["repetition_penalty"]) != 1.0:
            kw["repetition_penalty"] = float(g["repetition_penalty"])
        if g.get("no_repeat_ngram_size"):
            kw["no_repeat_ngram_size"] = int(g["no_repeat_ngram_size"])
        if self.suppress:
            kw["suppress_tokens"] = self.suppress
        return kw

    def encode(self, prompts: Sequence[str]) -> Any:
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def generate(self, items: Sequence[TagInput]) -> tuple[list[str], float]:
        """Captions for ``items`` (one batch) and the seconds spent inside ``model.generate``."""
        import torch

        inputs = self.encode(self.prompts(items))
        kwargs = self.generate_kwargs()
        g = self.gen_cfg
        if g.get("do_sample", True):
            sampler = make_row_sampler([row_seed(self.seed, it.id) for it in items],
                                       float(g.get("temperature") or 1.0), g.get("top_k"), g.get("top_p"))
            kwargs["logits_processor"] = [sampler]
        start = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        spent = time.perf_counter() - start
        new = out[:, inputs["input_ids"].shape[1]:]
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=False)
        prefix = str(self.prompt_cfg.get("response_prefix") or "")
        return [
            clean_caption(t, self.markers, self.stop_strings, self.special, prefix) for t in texts
        ], spent


def output_path(cfg: Any, shard: Any) -> tuple[Path, bool]:
    """The JSONL this worker writes and whether it was given explicitly (``-o``)."""
    explicit = cfg.infer.get("output")
    path = Path(str(explicit)).expanduser() if explicit else Path(str(cfg.paths.output_dir)).expanduser() / "captions.jsonl"
    if shard.is_sharded:
        path = path.with_name(f"{path.stem}.{shard.tag}{path.suffix or '.jsonl'}")
    return path, bool(explicit)


def output_record(item: TagInput, caption: str) -> dict[str, Any]:
    """The output line: every input field, then ``caption`` (an input caption moves to ``reference_caption``)."""
    rec = dict(item.row)
    if "caption" in rec:
        old = rec.pop("caption")
        rec.setdefault("reference_caption", old)
    rec["caption"] = caption
    return rec


def infer(cfg: Any, loaded: Any = None) -> InferResult:
    """Caption every tag set of ``infer.input`` (or the packaged demo) into a resumable JSONL.

    Args:
        cfg: A composed ``caption_inference`` config.
        loaded: An already loaded :class:`~tagtune.caption.model.LoadedModel` to reuse (the
            pipeline and the benchmark pass one); loaded from ``cfg.model`` when needed.

    Returns:
        An :class:`InferResult` with counts, the output path and timings.

    Raises:
        InputError: Bad input lines, duplicate ids, a missing tags column.
        ModelNotFoundError: The model or adapter cannot be loaded.
    """
    from tagtune.progress import make_progress, rate_text
    from tagtune.resumable import JsonlAppender
    from tagtune.runs import prepare_run_dir, sidecar_config
    from tagtune.sharding import resolve_shard
    from tagtune.taxonomy import Taxonomy

    shard = resolve_shard(cfg.infer.get("shard"))
    source = cfg.infer.get("input") or cfg.data.get("path")
    if not source:
        raise InputError("no input: pass a tags file (INPUT) or set data.path")
    limit = cfg.infer.get("limit")
    if limit is not None and int(limit) < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    batch_size = int(cfg.generation.batch_size)
    if batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {batch_size}")
    taxonomy = Taxonomy.load(cfg.data.taxonomy_path)
    items = read_tag_inputs(source, cfg.data, taxonomy, limit=None if limit is None else int(limit))
    mine = [it for it in items if shard.owns(it.id)]
    out, explicit = output_path(cfg, shard)
    if explicit:
        sidecar_config(cfg, out)
    else:
        prepare_run_dir(cfg, out.parent)

    result = InferResult(str(out), len(items), len(mine), 0, 0, shard=str(shard), model=str(cfg.model.name),
                         adapter=cfg.model.get("checkpoint_dir"))
    with JsonlAppender(out, key="id", overwrite=bool(cfg.infer.get("overwrite", False))) as sink:
        todo = [it for it in mine if it.id not in sink.done]
        result.already_done = len(mine) - len(todo)
        if not todo:
            return result
        start = time.perf_counter()
        if loaded is None:
            from tagtune.caption.model import load_for_inference

            loaded = load_for_inference(cfg.model)
        result.load_seconds = time.perf_counter() - start
        result.quantized, result.notices = loaded.quantized, list(loaded.notices)
        from tagtune.caption.model import torch_threads

        gen = CaptionGenerator(loaded, cfg.prompt, cfg.generation, int(cfg.seed))
        loop_start = time.perf_counter()
        with torch_threads(cfg.model.get("torch_threads")), make_progress("captions") as progress:
            task = progress.add_task(f"captioning {shard}" if shard.is_sharded else "captioning", total=len(todo), rate="")
            for i in range(0, len(todo), batch_size):
                batch = todo[i:i + batch_size]
                captions, spent = gen.generate(batch)
                result.generate_seconds += spent
                result.empty += sum(1 for c in captions if not c)
                t_write = time.perf_counter()
                sink.append(output_record(it, c) for it, c in zip(batch, captions, strict=True))
                result.write_seconds += time.perf_counter() - t_write
                result.written += len(batch)
                progress.update(task, advance=len(batch),
                                rate=rate_text(result.written, time.perf_counter() - loop_start, "captions"))
        result.seconds = time.perf_counter() - loop_start
    return result
