"""`dataset export --format concepts`: positives, matched negatives, pairs, random sets, read by a probe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import read_jsonl, run_cli, write_jsonl

INSTRUMENTS = ["piano", "drums", "violin", "flute"]
GENRES = ["rock", "jazz", "ambient"]


def _captions() -> list[dict]:
    rows = []
    for i in range(24):
        tags = [GENRES[i % 3], INSTRUMENTS[i % 4], "slow tempo" if i % 2 else "fast tempo"]
        rows.append({"id": f"r{i:02d}", "tags": tags, "caption": " ".join(tags)})
    for p in range(3):  # counterfactual pairs on piano
        base = [GENRES[p], "drums", "fast tempo"]
        rows.append({"id": f"p{p}-base", "tags": base, "caption": "x", "pair_id": f"p{p}", "concept": "piano", "edit": "base"})
        rows.append({"id": f"p{p}-add", "tags": [*base, "piano"], "caption": "y", "pair_id": f"p{p}", "concept": "piano",
                     "edit": "add"})
    return rows


@pytest.fixture(scope="module")
def concept_sets(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("concepts")
    captions = write_jsonl(base / "captions.jsonl", _captions())
    res = run_cli("pipeline", "run", "--preset", "quick_test", "--captions", captions, "-o", base / "run",
                  "tta:model=tta/synth", "tta:generation.duration=2", "tta:verification.checkers=[tempo]")
    assert res.code == 0, res.err
    res = run_cli("dataset", "export", base / "run", "--format", "concepts", "-o", base / "sets", "--random-sets", "3",
                  "--random-size", "5")
    assert res.code == 0, res.err
    return base / "sets"


def test_every_concept_has_equal_positives_and_matched_negatives(concept_sets):
    manifest = read_jsonl(concept_sets / "manifest.jsonl")
    by_name = {m["concept"]: m for m in manifest}
    assert set(INSTRUMENTS + GENRES) <= set(by_name)
    for entry in manifest:
        assert len(entry["positives"]) == len(entry["negatives"]) > 0
        for rel in entry["positives"] + entry["negatives"]:
            assert (concept_sets / rel).is_file()
        assert (concept_sets / entry["folder"] / "positive").is_dir() and (concept_sets / entry["folder"] / "negative").is_dir()
    # negatives never carry the concept; positives always do (and were realised where verified)
    rows = {r["id"]: r for r in read_jsonl(concept_sets.parent / "run" / "verify" / "metadata.jsonl")}
    by_file = {Path(r["file_name"]).name: r for r in rows.values()}
    for entry in manifest:
        assert all(entry["concept"] not in by_file[Path(p).name]["tags"] for p in entry["negatives"])
        assert all(entry["concept"] in by_file[Path(p).name]["tags"] for p in entry["positives"])
    # a tempo concept was verified: its positives are the clips whose tempo the checker heard
    slow = by_name["slow tempo"]
    assert all("slow tempo" in by_file[Path(p).name]["realised_tags"] for p in slow["positives"])
    # matched on the other categories: piano's negatives share genres with its positives as far as possible
    piano = by_name["piano"]
    genre = [next(t for t in by_file[Path(p).name]["tags"] if t in GENRES) for p in piano["positives"]]
    neg_genre = [next(t for t in by_file[Path(p).name]["tags"] if t in GENRES) for p in piano["negatives"]]
    assert sorted(genre) == sorted(neg_genre)
    assert len(piano["pairs"]) == 3 and all((concept_sets / p["partner"]).is_file() for p in piano["pairs"])
    assert len(list((concept_sets / "random").iterdir())) == 3
    assert "linear probe" in (concept_sets / "README.md").read_text(encoding="utf-8")


def test_a_linear_probe_reads_the_layout_end_to_end(concept_sets):
    """Embeddings from the offline tiny CLAP, a least-squares linear probe per concept (accuracy need not be high)."""
    from tagtune.config.compose import compose
    from tagtune.tta.audio import read_mono
    from tagtune.tta.clap import ClapEmbedder

    embedder = ClapEmbedder(compose("tta_inference", preset="quick_test").evaluate, "cpu")
    accuracies = {}
    for entry in map(json.loads, (concept_sets / "manifest.jsonl").read_text(encoding="utf-8").splitlines()):
        paths = entry["positives"] + entry["negatives"]
        x = embedder.embed_audio([read_mono(concept_sets / p) for p in paths])
        y = np.array([1.0] * len(entry["positives"]) + [-1.0] * len(entry["negatives"]))
        design = np.hstack([x, np.ones((len(x), 1))])
        w, *_ = np.linalg.lstsq(design, y, rcond=None)
        accuracies[entry["concept"]] = float(np.mean(np.sign(design @ w) == y))
    assert accuracies and all(0.0 <= a <= 1.0 for a in accuracies.values())
