"""The LLM caption backend (``model.backend=llm``): prompts rendered, generated in batches, cleaned.

:class:`CaptionGenerator` turns tag sets into captions with a loaded model; ``caption infer`` runs
it through :class:`LlmBackend` and ``caption finetune`` through its validation sampler. Sampling
is seeded per row (:class:`~tagtune.models.sampling.RowSeededSampler`): each tag set draws its
tokens from its own generator, seeded from the run seed and the row's id (a counterfactual pair's
``pair_id``, so both members of a pair draw alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagtune import __version__
from tagtune.caption.backends import BackendSettings
from tagtune.caption.clean import clean_caption
from tagtune.caption.config import Prompt, Sampling, llm_model
from tagtune.caption.data import order_tags
from tagtune.caption.prompts import end_markers, render_prompt
from tagtune.config.saved import config_hash
from tagtune.config.typed import to_dict
from tagtune.models.sampling import RowSeededSampler, seed_for_row
from tagtune.records.rows import TagSetRow
from tagtune.records.taxonomy import Taxonomy


class CaptionGenerator:
    """Tag sets -> cleaned captions for a loaded model, with the sampling settings applied."""

    def __init__(self, loaded: Any, prompt: Prompt, sampling: Sampling, taxonomy: Taxonomy):
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.prompt, self.sampling, self.taxonomy = prompt, sampling, taxonomy
        tok = self.tokenizer
        self.markers = end_markers(prompt, tok)
        self.stop_strings = [s for s in sampling.stop_strings if s]
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
            out.append(render_prompt(self.prompt, tags, self.tokenizer, cats))
        return out

    def generate_kwargs(self) -> dict[str, Any]:
        s = self.sampling
        kw: dict[str, Any] = {"max_new_tokens": s.max_new_tokens, "do_sample": False, "eos_token_id": self.eos_ids,
                              "pad_token_id": self.tokenizer.pad_token_id}
        if s.min_new_tokens:
            kw["min_new_tokens"] = s.min_new_tokens
        if s.repetition_penalty and s.repetition_penalty != 1.0:
            kw["repetition_penalty"] = s.repetition_penalty
        if s.no_repeat_ngram_size:
            kw["no_repeat_ngram_size"] = s.no_repeat_ngram_size
        if self.suppress:
            kw["suppress_tokens"] = self.suppress
        if self.stop_strings:
            # a row stops at its first stop string instead of running to max_new_tokens (the cleaner cuts
            # there anyway); transformers matches strings across token boundaries with the tokenizer
            kw["stop_strings"] = list(self.stop_strings)
            kw["tokenizer"] = self.tokenizer
        return kw

    def encode(self, prompts: Sequence[str]) -> Any:
        self.tokenizer.padding_side = "left"
        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}

    def generate(self, rows: Sequence[TagSetRow], seed: int) -> list[str]:
        """Captions for ``rows`` (one batch), each row sampled from ``seed_for_row(seed, row)``."""
        import torch

        inputs = self.encode(self.prompts(rows))
        kwargs = self.generate_kwargs()
        s = self.sampling
        kwargs["logits_processor"] = [RowSeededSampler(
            [seed_for_row(seed, r) for r in rows], s.max_new_tokens, s.do_sample, s.temperature, s.top_k, s.top_p,
        )]
        with torch.inference_mode():
            out = self.model.generate(**inputs, **kwargs)
        texts = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=False)
        prefix = self.prompt.response_prefix or ""
        return [clean_caption(t, self.markers, self.stop_strings, self.special, prefix) for t in texts]


class LlmBackend:
    """``model.backend=llm``: the causal LM of ``model`` (with ``model.checkpoint_dir``'s adapter) writes the captions.

    Args:
        settings: What ``caption infer`` read for the backend.
        loaded: A :class:`~tagtune.caption.model.LoadedModel` already loaded from the same
            settings (benchmarks and tests reuse one); loaded by :meth:`load` when None.
    """

    loads_weights = True

    def __init__(self, settings: BackendSettings, loaded: Any = None):
        self.settings = settings
        self.model = llm_model(settings.model)  # a missing LLM key is one line, before any weights load
        self.loaded = loaded
        self.generator: CaptionGenerator | None = None

    def load(self) -> list[str]:
        if self.loaded is None:
            from tagtune.caption.model import load_for_inference

            self.loaded = load_for_inference(self.model, self.settings.device)
        s = self.settings
        self.generator = CaptionGenerator(self.loaded, s.prompt, s.generation, s.taxonomy)
        return list(self.loaded.notices)

    def generate(self, rows: Sequence[TagSetRow], seed: int) -> list[str]:
        assert self.generator is not None, "load() first"
        return self.generator.generate(rows, seed)

    def provenance(self) -> dict[str, Any]:
        """The model (revision, adapter, quantization), a hash of the prompt section, the sampling settings."""
        loaded, s = self.loaded, self.settings
        return {
            "model": s.model.name, "revision": loaded.revision, "adapter": loaded.adapter, "quantized": loaded.quantized,
            "prompt": f"{s.prompt.format}:{config_hash(s.prompt, drop=())[:12]}",
            "generation": {k: v for k, v in to_dict(s.generation).items() if k != "batch_size"},
            "tagtune_version": __version__,
        }
