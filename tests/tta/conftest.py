"""Fixtures for the audio-stage tests: composed quick_test configs, prompt files, a loaded tiny MusicGen."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_jsonl

PROMPTS = [
    {"id": "calm", "caption": "a calm ambient piano piece with soft strings"},
    {"id": "rock", "caption": "energetic rock with electric guitar and loud drums", "tags": ["rock", "energetic"]},
    {"id": "jazz", "caption": "melancholic jazz ballad with saxophone"},
    {"id": "folk", "caption": "happy acoustic folk tune with fiddle", "duration": 0.1},
    {"id": "edm", "caption": "upbeat electronic dance track with synth bass"},
    {"id": "orch", "caption": "dark cinematic orchestral music with choir"},
]


@pytest.fixture(scope="session")
def tta_prompts() -> tuple[dict, ...]:
    """The six prompts of ``prompts_file`` (for fixtures wider than a test; do not change them)."""
    return tuple(PROMPTS)


@pytest.fixture
def prompt_rows() -> list[dict]:
    """The six prompts of ``prompts_file`` (a fresh copy a test may change)."""
    return [dict(p) for p in PROMPTS]


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "prompts.jsonl", PROMPTS)


@pytest.fixture
def make_cfg(tmp_path: Path, prompts_file: Path):
    """The typed config of a ``tta`` command (``tta generate`` unless ``command=``) with --preset quick_test,
    output under tmp_path, plus overrides/updates.

    ``updates`` are config keys with ``__`` for dots (``generate__shard="0/2"``). For ``tta generate``
    ``generate.input`` is the six-prompt file unless a test names another one, and clips are 0.2 s
    (13 decoder steps) unless a test asks otherwise: enough for every code path, cheap on a shared
    2-core machine.
    """
    from tagtune.config.commands import compose_command
    from tagtune.tta.config import COMMANDS, GENERATE

    def make(out: str | Path = "out", overrides: list[str] | None = None, command=GENERATE, **updates):
        base = {"paths.output_dir": str(tmp_path / out), "device": "cpu"}
        if command is GENERATE:
            base.update({"generation.duration": 0.2, "generate.input": str(prompts_file)})
        return compose_command(command, COMMANDS, overrides or [], preset="quick_test",
                               updates={**base, **{k.replace("__", "."): (str(v) if isinstance(v, Path) else v)
                                                   for k, v in updates.items()}})

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
    from tagtune.config.commands import compose_command
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.config import COMMANDS, GENERATE

    cfg = compose_command(GENERATE, COMMANDS, preset="quick_test", updates={"device": "cpu"})
    return load_backend(cfg.model, cfg.device, cfg.tagmap)
