"""Fixtures for the tags-stage tests: a small taxonomy, tag files in every layout, trained models.

Models are trained once per session (through the real CLI or the stage function) into a
session temp dir; tests that need to break a model dir copy it first.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import run_cli

TAXONOMY = {
    "genre": ["rock", "jazz", "ambient", "metal"],
    "mood": ["calm", "energetic", "dark"],
    "instrument": ["piano", "electric guitar", "synthesizer", "drums"],
    "tempo": ["slow tempo", "fast tempo"],
}

# Small sets with a clear structure: metal goes with electric guitar, dark and fast tempo, ...
PATTERNS = [
    ["metal", "energetic", "dark", "electric guitar", "drums", "fast tempo"],
    ["rock", "energetic", "electric guitar", "drums", "fast tempo"],
    ["jazz", "calm", "piano", "drums", "slow tempo"],
    ["ambient", "calm", "synthesizer", "slow tempo"],
    ["ambient", "dark", "synthesizer", "piano", "slow tempo"],
]


@pytest.fixture(scope="session")
def small_taxonomy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tax") / "taxonomy.json"
    path.write_text(json.dumps(TAXONOMY), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_sets() -> list[list[str]]:
    """60 tag sets: each pattern 12 times with one tag dropped in turn (so sets vary)."""
    out = []
    for pattern in PATTERNS:
        for i in range(12):
            drop = i % (len(pattern) + 2)  # some sets keep every tag
            out.append([t for j, t in enumerate(pattern) if j != drop])
    return out


@pytest.fixture(scope="session")
def small_jsonl(tmp_path_factory: pytest.TempPathFactory, small_sets: list[list[str]]) -> Path:
    path = tmp_path_factory.mktemp("data") / "sets.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, tags in enumerate(small_sets):
            fh.write(json.dumps({"id": f"r{i}", "tags": tags}) + "\n")
    return path


@pytest.fixture(scope="session")
def tag_data():
    """``data`` sections for :func:`tagtune.vae.data.load_vae_data`: `vae train`'s default one with keys replaced."""
    from tagtune.config.commands import compose_command
    from tagtune.config.typed import replace
    from tagtune.vae.config import COMMANDS, TRAIN

    base = compose_command(TRAIN, COMMANDS).data
    return lambda **keys: replace(base, keys)


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained in-process with --preset quick_test on the packaged demo data."""
    out = tmp_path_factory.mktemp("models") / "demo"
    code, _, err = run_cli("vae", "train", "--preset", "quick_test", "-o", out)
    assert code == 0 and (out / "model.safetensors").is_file(), err
    return out


@pytest.fixture
def broken_copy(tmp_path: Path, demo_model: Path):
    """A fresh copy of the demo model dir that a test may damage."""
    def _copy() -> Path:
        dest = tmp_path / "model"
        shutil.copytree(demo_model, dest)
        return dest

    return _copy

