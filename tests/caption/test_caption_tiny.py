"""The tiny offline caption model: built locally once, cached, reusable by transformers."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from tagtune.caption.tiny import CHAT_TEMPLATE, END, ensure_tiny_model, fingerprint, tiny_model_dir


@pytest.fixture
def tiny_section(caption_cfg, tmp_path):
    return replace(caption_cfg().model.tiny, cache_dir=str(tmp_path / "cache"))


def test_build_then_reuse_from_cache(tiny_section):
    first = ensure_tiny_model(tiny_section)
    assert first == tiny_model_dir(tiny_section)
    files = {p.name for p in first.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= files
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    again = ensure_tiny_model(tiny_section)
    assert again == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    leftovers = [p.name for p in first.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_fingerprint_follows_architecture_not_cache_dir(tiny_section):
    other_dir = replace(tiny_section, cache_dir="/somewhere/else")
    bigger = replace(tiny_section, hidden_size=tiny_section.hidden_size * 2)
    assert fingerprint(other_dir) == fingerprint(tiny_section)
    assert fingerprint(bigger) != fingerprint(tiny_section)


def test_cache_dir_expands_home(tiny_section, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tiny_model_dir(replace(tiny_section, cache_dir="~/tt"))
    assert str(path).startswith(str(tmp_path / "home" / "tt"))


def test_half_built_directory_is_rebuilt(tiny_section):
    target = tiny_model_dir(tiny_section)
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # a crashed copy: no weights
    built = ensure_tiny_model(tiny_section)
    assert (built / "model.safetensors").is_file()


def test_a_tampered_cached_model_is_rebuilt(tiny_section):
    built = ensure_tiny_model(tiny_section)
    good = (built / "model.safetensors").read_bytes()
    (built / "model.safetensors").write_bytes(good[: len(good) // 2])  # truncated by a full disk, say
    (built / "config.json").write_text("{}")
    again = ensure_tiny_model(tiny_section)
    assert again == built
    assert (built / "model.safetensors").read_bytes() == good  # same seed: the same weights again
    assert (built / "config.json").read_text() != "{}"


def test_tokenizer_and_model_load_with_transformers(tiny_section):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = ensure_tiny_model(tiny_section)
    tok = AutoTokenizer.from_pretrained(path)
    assert tok.eos_token == END and tok.pad_token and tok.bos_token
    assert tok.chat_template == CHAT_TEMPLATE
    text = "A calm piano ballad at a slow tempo."
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "llama"
    assert model.config.vocab_size == len(tok)
    assert model.config.hidden_size == tiny_section.hidden_size
    # Same seed, same weights: a rebuild elsewhere gives identical numbers.
    other = replace(tiny_section, cache_dir=os.path.join(tiny_section.cache_dir, "second"))
    twin = AutoModelForCausalLM.from_pretrained(ensure_tiny_model(other))
    assert all((a == b).all() for a, b in zip(model.parameters(), twin.parameters(), strict=True))
