"""Dataset assembly, split assignment, the card and the export (no models needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtune.errors import ConfigError, InputError
from tagtune.pipeline.dataset import build_dataset
from tagtune.pipeline.export import export_dataset
from tagtune.pipeline.splits import assign_splits
from tagtune.taxonomy import Taxonomy

TAX = Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "sad"], "tempo": ["slow tempo"]})
SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def fake_audio_dir(root: Path, n: int = 20, sr: int = 8000) -> Path:
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        ident = f"s0-{i:06d}"
        sf.write(root / "audio" / f"{ident}.wav", (rng.standard_normal(sr // 2) * 0.1).astype("float32"), sr, subtype="PCM_16")
        tags = ["rock", "sad"] if i % 2 else ["jazz", "calm", "slow tempo"]
        lines.append({"file_name": f"audio/{ident}.wav", "id": ident, "text": f"caption {i}", "caption": f"caption {i}",
                      "tags": tags, "duration": 0.5, "sample_rate": sr})
    (root / "metadata.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def test_splits_are_exact_seeded_and_stable():
    ids = [f"x{i}" for i in range(100)]
    a = assign_splits(ids, SPLITS, seed=1)
    assert sorted(a) == sorted(ids)
    counts = {s: list(a.values()).count(s) for s in SPLITS}
    assert counts == {"train": 70, "validation": 15, "test": 15}
    assert a == assign_splits(list(reversed(ids)), SPLITS, seed=1)
    assert a != assign_splits(ids, SPLITS, seed=2)
    with pytest.raises(ConfigError):
        assign_splits(ids, {"train": 0.9, "test": 0.2}, seed=1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200), seed=st.integers(0, 5))
def test_property_split_sizes_follow_the_fractions(n, seed):
    out = assign_splits([str(i) for i in range(n)], SPLITS, seed)
    for name, frac in SPLITS.items():
        assert abs(list(out.values()).count(name) - frac * n) < 1


def test_build_dataset_writes_metadata_audio_card_and_plots(tmp_path):
    src = fake_audio_dir(tmp_path / "tta")
    out = tmp_path / "dataset"
    summary = build_dataset(src, out, TAX, {"splits": SPLITS, "split_seed": 42, "name": "demo", "license": "cc-by-4.0"},
                            {"models": {"tta": "tiny"}})
    rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert summary.items == len(rows) == 20
    assert {r["split"] for r in rows} == set(SPLITS)
    first = rows[0]
    for key in ("id", "file_name", "split", "caption", "aspect_list", "genre", "mood", "tempo", "duration", "sample_rate"):
        assert key in first
    assert all((out / r["file_name"]).is_file() for r in rows)
    assert len(list((out / "audio").iterdir())) == 20
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-4.0") and "20 clips" in card and "load_dataset" in card
    assert {p.name for p in (out / "plots").iterdir()} == {"tag_frequency.png", "category_sizes.png", "set_size.png"}
    # a second build is idempotent
    before = (out / "metadata.jsonl").read_bytes()
    build_dataset(src, out, TAX, {"splits": SPLITS, "split_seed": 42, "name": "demo", "license": "cc-by-4.0"}, {"models": {"tta": "tiny"}})
    assert (out / "metadata.jsonl").read_bytes() == before


def test_build_dataset_refuses_missing_audio(tmp_path):
    src = fake_audio_dir(tmp_path / "tta", n=3)
    (src / "audio" / "s0-000001.wav").unlink()
    with pytest.raises(InputError, match=r"metadata\.jsonl:2: field 'file_name'"):
        build_dataset(src, tmp_path / "ds", TAX, {"splits": SPLITS, "split_seed": 1}, {})


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_writes_one_file_per_split_with_every_column(tmp_path, fmt):
    src = fake_audio_dir(tmp_path / "tta")
    build_dataset(src, tmp_path / "run" / "dataset", TAX, {"splits": SPLITS, "split_seed": 42}, {})
    result = export_dataset(tmp_path / "run", fmt=fmt)
    assert set(result.files) == set(SPLITS)
    total = 0
    for split, path in result.files.items():
        frame = pd.read_parquet(path) if fmt == "parquet" else pd.read_json(path, lines=True)
        assert set(frame["split"]) == {split}
        for col in ("id", "caption", "aspect_list", "genre", "mood", "tempo", "file_name", "audio"):
            assert col in frame.columns
        assert all(Path(p).is_file() for p in frame["audio"])
        total += len(frame)
    assert total == 20


def test_export_can_embed_audio_bytes(tmp_path):
    src = fake_audio_dir(tmp_path / "tta", n=4)
    build_dataset(src, tmp_path / "ds", TAX, {"splits": {"train": 1.0}, "split_seed": 0}, {})
    result = export_dataset(tmp_path / "ds", fmt="parquet", out_dir=tmp_path / "exp", embed_audio=True)
    frame = pd.read_parquet(result.files["train"])
    blob = frame["audio"][0]["bytes"]
    assert blob[:4] == b"RIFF"


def test_export_without_a_dataset_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no dataset here"):
        export_dataset(tmp_path)
