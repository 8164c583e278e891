"""Fixtures for the caption-stage tests: composed tiny configs, a loaded tiny model, tag files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tagtune.records import resources_dir


def compose_caption(config: str = "caption_inference", *overrides: str, preset: str | None = "quick_test") -> Any:
    from tagtune.config import compose

    return compose(config, overrides=list(overrides), preset=preset)


@pytest.fixture
def caption_cfg(tmp_path: Path):
    """``caption_cfg(config, *overrides)``: a quick_test config writing under tmp_path (short captions)."""

    def make(config: str = "caption_inference", *overrides: str) -> Any:
        return compose_caption(config, f"paths.output_dir={tmp_path / 'run'}", "generation.max_new_tokens=12", *overrides)

    return make


@pytest.fixture(scope="session")
def tiny_loaded():
    """The tiny caption model, loaded once per session (built into the test cache if needed)."""
    from tagtune.caption.model import load_for_inference

    cfg = compose_caption()
    return load_for_inference(cfg.model)


def demo_rows(n: int) -> list[dict[str, Any]]:
    """The first ``n`` packaged demo tag sets, shaped like ``vae sample`` output (no caption)."""
    rows = []
    with open(resources_dir() / "demo_tags.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            rec.pop("caption", None)
            rec["id"] = rec["id"].replace("demo", "s0")
            rec["sampling"] = {"mode": "bernoulli", "temperature": 1.0, "threshold": 0.5, "seed": 0}
            rows.append(rec)
            if len(rows) == n:
                break
    return rows


@pytest.fixture
def tags_jsonl(tmp_path: Path):
    """``tags_jsonl(n)``: a vae-sample-style JSONL with ``n`` tag sets."""

    def make(n: int = 12, name: str = "tags.jsonl") -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in demo_rows(n)), encoding="utf-8")
        return path

    return make


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def jsonl_reader():
    return read_jsonl
