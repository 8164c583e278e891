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

from helpers import read_jsonl, write_jsonl
from tagtune.errors import ConfigError, InputError
from tagtune.pipeline.dataset import METADATA, build_dataset, split_counts
from tagtune.pipeline.export import export_dataset
from tagtune.pipeline.splits import assign_splits, group_key
from tagtune.records.taxonomy import Taxonomy

TAX = Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "sad"], "tempo": ["slow tempo"]})
SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}
TAG_SETS = [["rock"], ["jazz"], ["calm"], ["sad"], ["rock", "sad"], ["jazz", "calm"], ["jazz", "calm", "slow tempo"],
            ["rock", "calm"], ["jazz", "sad"], ["slow tempo"]]


def dataset_cfg(**changes) -> dict:
    """The pipeline's ``dataset`` section as composed, with ``changes``."""
    from omegaconf import OmegaConf

    from tagtune.config.compose import compose

    return {**OmegaConf.to_container(compose("pipeline").dataset, resolve=True), "splits": SPLITS, **changes}


def fake_audio_dir(root: Path, n: int = 20, sr: int = 8000) -> Path:
    """A `tta generate` output folder: clips and ClipRow lines (every tag set twice, plus a user column)."""
    (root / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        ident = f"s0-{i:06d}"
        sf.write(root / "audio" / f"{ident}.wav", (rng.standard_normal(sr // 2) * 0.1).astype("float32"), sr, subtype="PCM_16")
        lines.append({"file_name": f"audio/{ident}.wav", "id": ident, "tags": TAG_SETS[i % len(TAG_SETS)],
                      "caption": f"caption {i}", "provenance": {"audio": {"model": "tiny", "seed": i}},
                      "duration": 0.5, "sample_rate": sr, "batch": f"b{i % 3}"})
    write_jsonl(root / "metadata.jsonl", lines)
    return root


def _rows(ds: Path) -> list[dict]:
    return [r for split in ("train", "validation", "test") if (ds / split / METADATA).is_file()
            for r in pd.read_parquet(ds / split / METADATA).to_dict("records")]


def test_splits_are_exact_seeded_and_stable():
    ids = [f"x{i}" for i in range(100)]
    a = assign_splits(ids, SPLITS, seed=1)
    assert sorted(a) == sorted(ids)
    counts = {s: list(a.values()).count(s) for s in SPLITS}
    assert counts == {"train": 70, "validation": 15, "test": 15}
    assert a == assign_splits(list(reversed(ids)), SPLITS, seed=1)
    assert a != assign_splits(ids, SPLITS, seed=2)
    with pytest.raises(ConfigError, match="dataset.splits"):
        assign_splits(ids, {"train": 0.9, "test": 0.2}, seed=1)


def test_rows_of_a_group_share_a_split():
    tags = {f"r{i}": TAG_SETS[i % len(TAG_SETS)] for i in range(60)}
    pairs = {"r1": "p1", "r2": "p1"}  # a counterfactual pair with different tag sets
    groups = {i: group_key(t, pairs.get(i)) for i, t in tags.items()}
    out = assign_splits(list(tags), SPLITS, seed=3, groups=groups)
    for i in tags:
        for j in tags:
            if groups[i] == groups[j]:
                assert out[i] == out[j]
    assert out["r1"] == out["r2"] and group_key(["b", "a"]) == group_key(["a", "b", "a"])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 200), seed=st.integers(0, 5))
def test_property_split_sizes_follow_the_fractions(n, seed):
    out = assign_splits([str(i) for i in range(n)], SPLITS, seed)
    for name, frac in SPLITS.items():
        assert abs(list(out.values()).count(name) - frac * n) < 1


def test_build_dataset_writes_split_folders_card_plots_and_provenance(tmp_path):
    src = fake_audio_dir(tmp_path / "tta")
    out = tmp_path / "dataset"
    summary = build_dataset(src, out, TAX, dataset_cfg(name="demo", license="cc-by-4.0"), {"inputs": {"audio_model": "tiny"}})
    rows = _rows(out)
    assert summary.items == len(rows) == 20 and summary.splits == split_counts(out)
    assert sum(summary.splits.values()) == 20 and set(summary.splits) <= set(SPLITS)
    first = rows[0]
    assert list(first)[:2] == ["file_name", "id"]
    for key in ("caption", "tags", "genre", "mood", "tempo", "provenance", "duration", "sample_rate", "batch"):
        assert key in first  # every column of every row, the user's own too
    assert "aspect_list" not in first and "split" not in first  # the split is the folder
    for split in summary.splits:
        for r in pd.read_parquet(out / split / METADATA).to_dict("records"):
            assert r["file_name"].startswith("audio/") and (out / split / r["file_name"]).is_file()
    by_tags = {}
    for split in summary.splits:
        for r in pd.read_parquet(out / split / METADATA).to_dict("records"):
            by_tags.setdefault(tuple(r["tags"]), set()).add(split)
    assert all(len(s) == 1 for s in by_tags.values())  # equal tag sets never straddle splits
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "\nlicense: cc-by-4.0\n" in card and "**20 clips**" in card and "load_dataset" in card
    assert {p.name for p in (out / "plots").iterdir()} == {"tag_frequency.png", "category_sizes.png", "set_size.png"}
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["declared_license"] == "cc-by-4.0" and provenance["taxonomy"] == TAX.to_dict()
    assert (out / "NOTICE.md").is_file()
    # a second build is idempotent
    before = {p: p.read_bytes() for p in out.glob("*/metadata.parquet")}
    build_dataset(src, out, TAX, dataset_cfg(name="demo", license="cc-by-4.0"), {"inputs": {"audio_model": "tiny"}})
    assert {p: p.read_bytes() for p in out.glob("*/metadata.parquet")} == before


def test_build_dataset_refuses_missing_audio(tmp_path):
    src = fake_audio_dir(tmp_path / "tta", n=3)
    (src / "audio" / "s0-000001.wav").unlink()
    with pytest.raises(InputError, match=r"metadata\.jsonl:2: field 'file_name'"):
        build_dataset(src, tmp_path / "ds", TAX, dataset_cfg(), {})


def test_leakage_guard_drops_rows_matching_an_evaluation_set(tmp_path):
    src = fake_audio_dir(tmp_path / "tta")
    held_out = write_jsonl(tmp_path / "eval.jsonl", [{"id": "e", "tags": ["jazz", "calm", "slow tempo"], "caption": "elsewhere"}])
    summary = build_dataset(src, tmp_path / "ds", TAX, dataset_cfg(exclude=[str(held_out)]), {})
    assert summary.items == 18 and summary.excluded["dropped"] == 2
    assert all(sorted(r["tags"]) != sorted(["jazz", "calm", "slow tempo"]) for r in _rows(tmp_path / "ds"))


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_writes_every_split_with_every_column(tmp_path, fmt):
    src = fake_audio_dir(tmp_path / "tta")
    build_dataset(src, tmp_path / "run" / "dataset", TAX, dataset_cfg(), {})
    result = export_dataset(tmp_path / "run", fmt=fmt)
    assert result.out_dir == tmp_path / "run" / f"export-{fmt}"
    counts = split_counts(tmp_path / "run" / "dataset")
    assert set(result.files) == set(counts) and result.rows == counts
    total = 0
    for split, paths in result.files.items():
        if fmt == "parquet":
            frame = pd.concat([pd.read_parquet(p) for p in paths])
            assert all(a["bytes"][:4] == b"RIFF" for a in frame["audio"])  # audio embedded
        else:
            frame = pd.DataFrame(read_jsonl(paths[0]))
            assert all((result.out_dir / f).is_file() for f in frame["file_name"])
        for col in ("id", "caption", "tags", "genre", "mood", "tempo", "batch"):
            assert col in frame.columns
        assert len(frame) == counts[split]
        total += len(frame)
    assert total == 20


@pytest.mark.parametrize("fmt", ["audiocraft", "webdataset"])
def test_export_for_trainers_writes_one_entry_per_row(tmp_path, fmt):
    src = fake_audio_dir(tmp_path / "tta")
    build_dataset(src, tmp_path / "ds", TAX, dataset_cfg(), {})
    result = export_dataset(tmp_path / "ds", fmt=fmt, out_dir=tmp_path / "exp")
    rows = {k: v for k, v in result.rows.items() if k not in ("generate", "dset")}  # audiocraft: prompts, its config
    assert sum(rows.values()) == 20 and all(p.is_file() for ps in result.files.values() for p in ps)
    if fmt == "audiocraft":
        assert result.rows["generate"] == result.rows["evaluate"] and result.rows["dset"] == 20


def test_export_refuses_an_unknown_format_and_a_folder_inside_the_dataset(tmp_path):
    src = fake_audio_dir(tmp_path / "tta", n=4)
    build_dataset(src, tmp_path / "ds", TAX, dataset_cfg(splits={"train": 1.0}), {})
    with pytest.raises(ConfigError, match="unknown export format 'csv'"):
        export_dataset(tmp_path / "ds", fmt="csv")
    with pytest.raises(ConfigError, match="inside the dataset folder"):
        export_dataset(tmp_path / "ds", fmt="jsonl", out_dir=tmp_path / "ds" / "exp")


def test_export_without_a_dataset_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no dataset here"):
        export_dataset(tmp_path)


def test_rows_without_a_recorded_loudness_get_it_measured(tmp_path):
    """Clips rendered before loudness was recorded (or brought in by hand) still give every row its loudness_lufs."""
    import pyloudnorm

    src = fake_audio_dir(tmp_path / "tta", n=6)
    build_dataset(src, tmp_path / "ds", TAX, dataset_cfg(splits={"train": 1.0}), {})
    rows = _rows(tmp_path / "ds")
    assert len(rows) == 6
    for row in rows:
        data, rate = sf.read(tmp_path / "ds" / "train" / row["file_name"], dtype="float64")
        assert row["loudness_lufs"] == pytest.approx(pyloudnorm.Meter(rate).integrated_loudness(data), abs=0.01)
