"""The demo dataset's audio facts and card: even loudness (BS.1770), BPM and key per row, a card a
publisher can push as it is (citations, intended use, limitations, no path of this machine)."""

from __future__ import annotations

import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from helpers import run_cli

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """`pipeline run --preset demo` on 30 tag sets (the preset's settings, fewer items)."""
    out = tmp_path_factory.mktemp("facts-demo") / "demo"
    res = run_cli("pipeline", "run", "--preset", "demo", "-n", "30", "-o", out)
    assert res.code == 0, res.err
    return out


def _rows(demo: Path) -> list[dict]:
    ds = demo / "dataset"
    return [{**r, "_audio": ds / s / r["file_name"]} for s in SPLITS if (ds / s / "metadata.parquet").is_file()
            for r in pd.read_parquet(ds / s / "metadata.parquet").to_dict("records")]


def test_demo_clips_are_at_minus_23_lufs_and_rows_say_so(demo):
    """Acceptance: pyloudnorm measures every clip within 0.5 LU of the -23 LUFS target and within 0.2 LU of the
    row's loudness_lufs; the spread across clips is under 1 LU."""
    import pyloudnorm

    measured = []
    for row in _rows(demo):
        data, rate = sf.read(row["_audio"], dtype="float64")
        lufs = pyloudnorm.Meter(rate).integrated_loudness(data)
        assert abs(lufs + 23.0) < 0.5 and abs(lufs - row["loudness_lufs"]) < 0.2, row["id"]
        loud = row["provenance"]["audio"]["loudness"]
        assert loud["normalize"] == "loudness" and loud["target_lufs"] == -23.0 and loud["true_peak_db"] <= -0.99
        measured.append(lufs)
    assert len(measured) == 30 and max(measured) - min(measured) < 1.0


def test_demo_rows_carry_bpm_and_key_and_slow_is_slower_than_fast(demo):
    rows = _rows(demo)
    tempo = [r for r in rows if any(t.endswith("tempo") for t in r["tags"])]
    assert tempo and all(r["bpm"] > 0 for r in tempo)  # acceptance: every row with a tempo tag has a BPM
    assert all(0 <= r["bpm_confidence"] <= 1 for r in tempo)
    by_tag = {t: [r["bpm"] for r in rows if t in list(r["tags"])] for t in ("slow tempo", "medium tempo", "fast tempo")}
    assert statistics.median(by_tag["slow tempo"]) < statistics.median(by_tag["medium tempo"]) \
        < statistics.median(by_tag["fast tempo"])
    keyed = [r for r in rows if r["key_estimate"]]
    assert len(keyed) >= 25 and all(re.fullmatch(r"[A-G]#? (major|minor)", r["key_estimate"]) for r in keyed)
    truth = [r["provenance"]["audio"]["plan"]["key"] for r in keyed]  # the synth's own plan: the truth
    assert np.mean([r["key_estimate"] == k for r, k in zip(keyed, truth, strict=True)]) > 1 / 24  # better than chance
    by = rows[0]["provenance"]["verify"]["facts_by"]
    assert "librosa" in by["bpm"] and "Krumhansl-Schmuckler" in by["key"]


def test_demo_card_can_be_pushed_as_it_is(demo):
    card = (demo / "dataset" / "README.md").read_text(encoding="utf-8")
    header, body = card.split("---", 2)[1:]
    assert "pretty_name: 'tagtune demo: synthesised concept-labelled music'" in header
    assert body.lstrip().startswith("# tagtune demo: synthesised concept-labelled music")
    for section in ("## Intended use", "## Bias, risks and limitations", "## Citation", "## Look and listen"):
        assert section in body
    assert "@misc{tagtune_demo" in body and "2601.14157" in body  # the dataset itself and ConceptCaps
    assert "2306.05284" not in body and "2407.21783" not in body  # no MusicGen, no Llama: the synth and templates made it
    assert "**Synthesised audio.**" in body and "[report.html](report.html)" in body
    assert "integrated loudness (`loudness_lufs`, ITU-R BS.1770-4): median -23.0 LUFS" in body
    assert str(demo) not in card and str(Path.home()) not in card
    assert not re.search(r"(?<![\w.:/])/(tmp|home|root|Users|var)/", card)  # no absolute path of this machine


def test_citations_follow_the_models_actually_used():
    from tagtune.pipeline.card_sections import citation, dataset_entry

    rows = [{"provenance": {"audio": {"model": "facebook/musicgen-large"},
                            "caption": {"model": "meta-llama/Llama-3.1-8B-Instruct"}}}]
    provenance = {"verification": {"judged_by": {"clap": {"model": "laion/clap-htsat-unfused", "revision": "8fa0f1c"}}},
                  "licences": [{"id": "bsienkiewicz/ConceptCaps", "license": "cc-by-4.0"}]}
    cfg = {"name": "cc-set", "pretty_name": "CC set", "citation": {"author": "Doe, Jane", "year": 2026, "url": None}}
    text = citation(cfg, provenance, rows, url="https://huggingface.co/datasets/me/cc-set")
    for arxiv in ("2601.14157", "2306.05284", "2407.21783", "2211.06687"):
        assert arxiv in text
    assert "the source of its tag data" in text and "2301.11325" not in text  # ConceptCaps data, no MusicCaps input
    entry = dataset_entry(cfg, "https://huggingface.co/datasets/me/cc-set")
    assert entry.startswith("@misc{cc_set2026,") and "{Doe, Jane}" in entry and "\\url{https://huggingface.co" in entry
    bare = citation({"name": "x", "citation": {}}, {}, [{"provenance": {"audio": {"model": "synth"}}}])
    assert "2306.05284" not in bare and "{x contributors}" in bare and "howpublished" not in bare
