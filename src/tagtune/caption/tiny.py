"""The tiny offline caption model: a small Llama-architecture network and a locally trained tokenizer.

Nothing is downloaded. The tokenizer is a byte-level BPE trained on the packaged demo captions,
the packaged taxonomy and a prompt text (``tiny_prompt.txt``: the default prompt file as it was
when the tiny model was first built, kept apart from the config tree so that editing a config
cannot change the model), with a small chat template of its own; the model has random weights
drawn from a fixed seed. Both are saved in Hugging Face format into
``model.tiny.cache_dir/tiny-llama-<fingerprint>``, the fingerprint hashing the ``model.tiny``
settings that build it (all but ``cache_dir``) and that corpus, so every later run (and every
subprocess of a test session) reuses them (:mod:`tagtune.files.cache`: built into a temporary
directory and renamed into place, checked on every use).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tagtune.caption.config import TinyLlm
from tagtune.config.typed import to_dict
from tagtune.files.cache import build_cached
from tagtune.files.readers import iter_records, resources_dir

# Bump when the build recipe changes so old caches are not reused.
_BUILD_VERSION = 2

PAD, BOS, END = "<|pad|>", "<|bos|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")
SPECIAL_TOKENS = (PAD, BOS, END, *ROLE_TOKENS)

# Jinja chat template of the tiny tokenizer: <|role|>text<|end|> per message.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] | trim }}<|end|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _corpus() -> list[str]:
    """Text the tokenizer learns from: demo tag sets and captions, the taxonomy, the prompt text."""
    texts: list[str] = []
    for _, rec in iter_records(resources_dir() / "demo_tags.jsonl"):
        texts.append(", ".join(rec.get("tags") or []))
        if rec.get("caption"):
            texts.append(str(rec["caption"]))
    texts.append((resources_dir() / "taxonomy.yaml").read_text(encoding="utf-8"))
    texts.append((Path(__file__).with_name("tiny_prompt.txt")).read_text(encoding="utf-8"))
    return texts


def _arch(tiny: TinyLlm) -> dict[str, Any]:
    """The settings that build the model: every ``model.tiny`` key but where it is cached."""
    return {k: v for k, v in to_dict(tiny).items() if k != "cache_dir"}


def fingerprint(tiny: TinyLlm) -> str:
    """A short hash of everything that changes the built files (sizes, seed, corpus, recipe)."""
    blob = json.dumps({"v": _BUILD_VERSION, "arch": _arch(tiny), "corpus": _corpus()}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def tiny_model_dir(tiny: TinyLlm) -> Path:
    """Where the tiny model with these settings lives (built or not)."""
    return Path(os.path.expanduser(tiny.cache_dir)) / f"tiny-llama-{fingerprint(tiny)}"


def build_tokenizer(vocab_size: int) -> Any:
    """Train the byte-level BPE tokenizer and wrap it as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=END, pad_token=PAD,
        extra_special_tokens=list(ROLE_TOKENS), model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _build_into(target: Path, tiny: TinyLlm) -> dict[str, Any]:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(tiny.vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        **{k: v for k, v in _arch(tiny).items() if k not in ("vocab_size", "seed")},
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng():
        torch.manual_seed(tiny.seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return {"kind": "caption-llm", "fingerprint": fingerprint(tiny),
            "parameters": sum(p.numel() for p in model.parameters())}


def ensure_tiny_model(tiny: TinyLlm) -> Path:
    """Build the tiny model once and return its directory (a local ``from_pretrained`` path).

    Args:
        tiny: The ``model.tiny`` config section (sizes, seed, cache_dir).

    Returns:
        The directory holding ``config.json``, ``model.safetensors`` and the tokenizer files.
    """
    return build_cached(tiny_model_dir(tiny), lambda dest: _build_into(dest, tiny))
