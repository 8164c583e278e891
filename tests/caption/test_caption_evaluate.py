"""``tagtune caption evaluate``: JSON metrics, reference joins, column errors, the ConceptCaps seed file."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from helpers import run_cli, write_jsonl

PREDS = [
    {"id": "a", "tags": ["rock", "energetic"], "caption": "An energetic rock anthem."},
    {"id": "b", "tags": ["jazz", "calm", "piano"], "caption": "A calm jazz trio led by piano."},
    {"id": "c", "tags": ["folk", "violin"], "caption": "A folk tune."},
]


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _eval(args: list[str]) -> dict:
    code, out, err = run_cli("caption", "evaluate", *args, "evaluate.embedding=false")
    assert code == 0, err
    path = Path(args[args.index("-o") + 1])
    assert f"metrics written to {path}" in " ".join(out.split())
    return json.loads(path.read_text())


def test_evaluate_writes_json_with_coverage_and_table(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    code, out, err = run_cli("caption", "evaluate", str(preds), "-o", str(tmp_path / "m.json"))
    assert code == 0, err
    assert "tag coverage" in out and "Tag coverage per category" in out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["rows"] == 3
    assert m["coverage"]["mean"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["coverage"]["per_category"]["genre"]["coverage"] == 1.0
    assert m["coverage"]["per_category"]["instrument"] == {"coverage": 0.5, "tags": 2}
    assert m["references"] is None
    assert set(m["distinct"]) == {"distinct_1", "distinct_2", "distinct_3"}


def _has_wordnet() -> bool:
    import nltk

    for name in ("corpora/wordnet", "corpora/wordnet.zip"):
        try:
            nltk.data.find(name)
            return True
        except LookupError:
            continue
    return False


def test_references_joined_on_id_in_any_order(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    refs = _write_csv(tmp_path / "refs.csv", [{"id": r["id"], "caption": r["caption"]} for r in reversed(PREDS)])
    m = _eval([str(preds), "--reference", str(refs), "-o", str(tmp_path / "m.json")])
    ref = m["references"]
    assert ref["matched_by"] == "id" and ref["pairs"] == 3
    assert ref["protocol"] == "lp-musiccaps"  # BLEU-1..4 on the 0-1 scale, as LP-MusicCaps and ConceptCaps report
    assert [ref[f"bleu_{n}"] for n in (1, 2, 3, 4)] == pytest.approx([1.0] * 4)
    assert ref["rouge_l"] == pytest.approx(1.0)
    if _has_wordnet():  # identical captions: METEOR just under 1 (its fragmentation penalty)
        assert ref["meteor"] == pytest.approx(1.0, abs=0.01)
    else:
        assert ref["meteor"].startswith("unavailable: no WordNet in the NLTK data path")
    assert ref["embedding_similarity"].startswith("unavailable: turned off (evaluate.embedding=false)")
    alias = _eval([str(preds), "--references", str(refs), "-o", str(tmp_path / "m2.json")])  # the older spelling
    assert alias["references"] == ref


def test_references_by_row_order_and_same_file_column(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", [dict(r, reference_caption="A calm piano piece.") for r in PREDS])
    refs = _write_csv(tmp_path / "refs.csv", [{"text": "An energetic rock anthem."}] * 3)
    by_row = _eval([str(preds), "--references", str(refs), "--reference-column", "text", "-o", str(tmp_path / "m1.json")])
    assert by_row["references"]["matched_by"] == "row order"
    same = _eval([str(preds), "--reference-column", "reference_caption", "-o", str(tmp_path / "m2.json")])
    assert same["references"]["matched_by"] == "same file" and same["references"]["pairs"] == 3


def _error(args: list[str]) -> str:
    return run_cli("caption", "evaluate", *args).error()


def test_reference_and_column_errors_are_one_line(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    refs = _write_csv(tmp_path / "refs.csv", [{"id": "zz", "caption": "x"}])
    msg = _error([str(preds), "--references", str(refs)])  # ids that share nothing: not joined by row order
    assert "no prediction id is among the reference ids" in msg and "'a'" in msg and "'zz'" in msg
    msg = _error([str(preds), "--caption-column", "nope"])
    assert "caps.jsonl:1" in msg and "nope" in msg and "available columns" in msg
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PREDS[0]) + "\n" + '{"id": "x", "tags": 5, "caption": "y"}\n')
    msg = _error([str(bad)])
    assert "bad.jsonl:2" in msg and "'tags'" in msg


@pytest.mark.shared_data
def test_conceptcaps_seed_captions(shared_data, tmp_path):
    m = _eval([
        str(shared_data / "seed_llm_captions_validation.csv"), "--taxonomy", str(shared_data / "taxonomy.json"),
        "-o", str(tmp_path / "seed.json"),
    ])
    assert m["rows"] == 1191
    assert m["columns"]["tags"] == ["aspect_list"] and m["columns"]["caption"] == "prediction"
    assert set(m["coverage"]["per_category"]) == {"tempo", "genre", "mood", "instrument"}
    assert 0.3 < m["coverage"]["mean"] < 0.95  # a fine-tuned 8B model mentions most, not all, tags
    assert 20 < m["length_words"]["mean"] < 45


@pytest.mark.shared_data
def test_conceptcaps_training_captions_cover_their_tags(shared_data, tmp_path):
    m = _eval([
        str(shared_data / "musiccaps_tags_captions.csv"), "--taxonomy", str(shared_data / "taxonomy.json"),
        "-o", str(tmp_path / "mc.json"),
    ])
    assert m["rows"] == 1512 and m["columns"]["caption"] == "caption"
    assert m["coverage"]["micro"] > 0.5
