"""Fixtures for the caption-stage tests: composed tiny configs, a loaded tiny model, tag files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import read_jsonl, write_jsonl
from tagtune.caption.backends import settings_of
from tagtune.caption.config import COMMANDS, INFER, InferConfig, llm_model
from tagtune.config.commands import Command, compose_command
from tagtune.files.readers import resources_dir
from tagtune.records.taxonomy import Taxonomy


def compose_caption(command: Command = INFER, *overrides: str, preset: str | None = "quick_test") -> Any:
    return compose_command(command, COMMANDS, list(overrides), preset=preset)


@pytest.fixture
def caption_cfg(tmp_path: Path):
    """``caption_cfg(command, *overrides)``: a quick_test config writing under tmp_path (short captions)."""

    def make(command: Command = INFER, *overrides: str) -> Any:
        return compose_caption(command, f"paths.output_dir={tmp_path / 'run'}", "generation.max_new_tokens=12", *overrides)

    return make


@pytest.fixture(scope="session")
def tiny_loaded():
    """The tiny caption model, loaded once per session (built into the test cache if needed)."""
    from tagtune.caption.model import load_for_inference

    return load_for_inference(llm_model(compose_caption().model))


@pytest.fixture
def tiny(tiny_loaded):
    """``tiny(cfg)``: the llm caption backend of an infer config, on the session's loaded tiny model."""
    from tagtune.caption.llm import LlmBackend

    def make(cfg: InferConfig) -> LlmBackend:
        return LlmBackend(settings_of(cfg, Taxonomy.load(cfg.data.taxonomy_path)), loaded=tiny_loaded)

    return make


@pytest.fixture
def infer_tiny(tiny):
    """``infer_tiny(cfg)``: ``caption infer`` (the function) on the session's loaded tiny model."""
    from tagtune.caption.infer import infer

    return lambda cfg: infer(cfg, backend=tiny(cfg))


def demo_rows(n: int) -> list[dict[str, Any]]:
    """The first ``n`` packaged demo tag sets, shaped like ``vae sample`` output (no caption)."""
    rows = []
    for rec in read_jsonl(resources_dir() / "demo_tags.jsonl")[:n]:
        rec.pop("caption", None)
        rec["id"] = rec["id"].replace("demo", "s0")
        rec["provenance"] = {"tags": {"model": "demo", "fingerprint": "0123456789abcdef", "mode": "bernoulli",
                                      "prior": "aggregate", "temperature": 1.0, "threshold": 0.5, "seed": 0}}
        rows.append(rec)
    return rows


@pytest.fixture
def tags_jsonl(tmp_path: Path):
    """``tags_jsonl(n)``: a vae-sample-style JSONL with ``n`` tag sets."""

    def make(n: int = 12, name: str = "tags.jsonl") -> Path:
        return write_jsonl(tmp_path / name, demo_rows(n))

    return make
