"""Fixtures for the audio-stage tests: composed quick_test configs, prompt files, a loaded tiny MusicGen."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROMPTS = [
    {"id": "calm", "caption": "a calm ambient piano piece with soft strings"},
    {"id": "rock", "caption": "energetic rock with electric guitar and loud drums", "tags": ["rock", "energetic"]},
    {"id": "jazz", "caption": "melancholic jazz ballad with saxophone"},
    {"id": "folk", "caption": "happy acoustic folk tune with fiddle", "duration": 0.1},
    {"id": "edm", "caption": "upbeat electronic dance track with synth bass"},
    {"id": "orch", "caption": "dark cinematic orchestral music with choir"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)


@pytest.fixture
def make_cfg(tmp_path: Path):
    """Compose tta_inference with --preset quick_test, output under tmp_path, plus overrides/updates.

    Clips are 0.2 s (13 decoder steps) unless a test asks otherwise: enough for every code path,
    cheap on a shared 2-core machine.
    """
    from tagtune.config import compose

    def make(out: str | Path = "out", overrides: list[str] | None = None, **updates):
        base = {"paths.output_dir": str(tmp_path / out), "model.device": "cpu", "evaluation.device": "cpu",
                "generation.duration": 0.2}
        return compose("tta_inference", overrides=overrides or [], preset="quick_test",
                       updates={**base, **{k.replace("__", "."): v for k, v in updates.items()}})

    return make


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tiny models are far faster on one thread when the 2 cores are shared (no OpenMP barrier
    waits on descheduled threads); restored after each test so other stages keep their setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_backend():
    """The tiny MusicGen, loaded once per session for in-process runs."""
    from tagtune.config import compose
    from tagtune.tta.model import load_backend

    cfg = compose("tta_inference", preset="quick_test", updates={"model.device": "cpu"})
    return load_backend(cfg.model)


@pytest.fixture(scope="session")
def tta_helpers():
    """write_jsonl / read_jsonl / PROMPTS for test modules (which must not import each other)."""
    return {"write_jsonl": write_jsonl, "read_jsonl": read_jsonl, "PROMPTS": PROMPTS}
