"""MusicGen's precision and compilation settings: ``model.dtype`` casts the text encoder and the decoder
while EnCodec, which makes the written samples, keeps float32; ``model.compile`` compiles the decoder."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tagtune.config.commands import compose_command
from tagtune.tta.backends import musicgen
from tagtune.tta.config import COMMANDS, GENERATE
from tagtune.tta.tiny import ensure_tiny_musicgen


@pytest.fixture
def tiny_model():
    return compose_command(GENERATE, COMMANDS, preset="quick_test", updates={"device": "cpu"}).model


def _dtypes(module: torch.nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()}


def test_half_precision_leaves_encodec_in_float32(tiny_model):
    source = str(ensure_tiny_musicgen(tiny_model.tiny))
    model = musicgen._load_model(source, "cpu", torch.bfloat16, {"revision": None, "trust_remote_code": False})
    assert _dtypes(model.decoder) == {torch.bfloat16} and _dtypes(model.text_encoder) == {torch.bfloat16}
    assert _dtypes(model.audio_encoder) == {torch.float32}


def test_cpu_runs_in_float32(tiny_model):
    backend = musicgen.TransformersMusicgen(tiny_model, "cpu")
    assert _dtypes(backend.model) == {torch.float32}


def test_compile_is_off_by_default_and_compiles_the_decoder_when_asked(tiny_model, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append((fn, kw)) or fn)
    assert tiny_model.compile is False
    musicgen.TransformersMusicgen(tiny_model, "cpu")
    assert compiled == []
    backend = musicgen.TransformersMusicgen(dataclasses.replace(tiny_model, compile=True), "cpu")
    assert len(compiled) == 1 and compiled[0][1] == {"dynamic": True}
    assert compiled[0][0].__self__ is backend.model.decoder  # the decoder's own forward


def test_compile_and_dtype_keys_compose():
    for option in ("musicgen-small", "musicgen-medium", "musicgen-large", "musicgen-stereo-small",
                   "musicgen-stereo-large", "tiny"):
        model = compose_command(GENERATE, COMMANDS, [f"model=tta/{option}"]).model
        assert (model.dtype, model.compile) == ("auto", False), option
    model = compose_command(GENERATE, COMMANDS, ["model.compile=true"], preset="conceptcaps").model
    assert model.compile is True
