"""Caption results that used to be wrong or incomplete without a word (issue 23, round 2).

References joined to the wrong predictions, a coverage of 0 that was not measured, a second
writer deleting the first one's output, an empty output left by a model that cannot load, a
summary with no validation, a directory given as a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import error_line, run_cli, write_jsonl

PREDS = [
    {"id": "a", "tags": ["rock", "energetic"], "caption": "An energetic rock anthem with loud guitars."},
    {"id": "b", "tags": ["jazz", "calm", "piano"], "caption": "A calm jazz trio led by piano."},
    {"id": "c", "tags": ["folk", "violin"], "caption": "A folk tune with a fiddle."},
]
QUICK = ("evaluate.embedding=false", "evaluate.bertscore.enabled=false", "evaluate.mauve.enabled=false")


def _evaluate(tmp_path: Path, preds: Path, *args: str):
    return run_cli("caption", "evaluate", str(preds), *args, *QUICK, "-o", str(tmp_path / "m.json"))


# -- references joined to their own predictions -----------------------------------------------------------------

def test_references_sharing_no_id_are_refused_naming_both_files(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": f"x{i}", "caption": r["caption"]}
                                                  for i, r in enumerate(reversed(PREDS))])
    code, _, err = _evaluate(tmp_path, preds, "--reference", str(refs))
    assert code == 2  # before: joined by row order, each caption scored against another's reference
    error_line(err, "no prediction id is among the reference ids", f"{preds} has ids such as 'a'",
               f"{refs} such as 'x0'")
    assert not (tmp_path / "m.json").exists()


def test_partial_overlap_joins_on_id_and_reports_the_unmatched(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": r["id"], "caption": r["caption"]} for r in PREDS[:2]]
                       + [{"id": "zz", "caption": "unrelated"}])
    code, out, err = _evaluate(tmp_path, preds, "--reference", str(refs))
    assert code == 0, err
    ref = json.loads((tmp_path / "m.json").read_text())["references"]
    assert ref["matched_by"] == "id" and ref["pairs"] == 2 and ref["unmatched"] == 1
    assert ref["bleu_1"] == pytest.approx(1.0)  # each caption against its own reference
    assert "warning: 1 of 3 predictions have no reference" in " ".join(err.split())
    assert "predictions with no reference" in out and "1 (not scored)" in out


def test_files_without_ids_join_by_row_order_with_a_note(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", [{k: v for k, v in r.items() if k != "id"} for r in PREDS])
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"caption": r["caption"]} for r in PREDS])
    code, _, err = _evaluate(tmp_path, preds, "--reference", str(refs))
    assert code == 0, err
    ref = json.loads((tmp_path / "m.json").read_text())["references"]
    assert ref["matched_by"] == "row order" and ref["unmatched"] == 0 and ref["bleu_1"] == pytest.approx(1.0)
    assert "references joined by row order (neither file has ids)" in " ".join(err.split())


def test_files_without_ids_and_different_counts_are_refused(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"caption": r["caption"]} for r in PREDS[:2]])
    code, _, err = _evaluate(tmp_path, preds, "--reference", str(refs))
    assert code == 2
    error_line(err, f"{refs}: references cannot be joined: {refs} has no ids, and 2 reference rows vs 3 predictions")


def test_a_repeated_reference_id_is_refused_by_line(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", PREDS)
    refs = write_jsonl(tmp_path / "refs.jsonl", [{"id": "a", "caption": "one"}, {"id": "a", "caption": "two"}])
    code, _, err = _evaluate(tmp_path, preds, "--reference", str(refs))
    assert code == 2
    error_line(err, f"{refs}:2: field 'id': duplicate id 'a' (first on line 1)")


# -- coverage that cannot be measured --------------------------------------------------------------------------

def test_coverage_is_not_measurable_when_no_row_has_tags(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", [dict(r, tags=[]) for r in PREDS])
    code, out, err = _evaluate(tmp_path, preds)
    assert code == 0, err
    cov = json.loads((tmp_path / "m.json").read_text())["coverage"]
    assert cov["mean"] == cov["micro"] == cov["full"] == "not measurable: no row has tags"  # before: 0.0
    assert cov["per_category"] == {} and cov["rows_with_tags"] == 0
    assert "not measurable: no row has tags" in out and "0.000" not in out.split("length")[0]
    manifest = json.loads((tmp_path / "eval_manifest.json").read_text())
    assert "not measurable" in json.dumps(manifest)


def test_coverage_counts_only_rows_with_tags_and_says_how_many(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", [PREDS[0], dict(PREDS[1], tags=[])])
    code, out, err = _evaluate(tmp_path, preds)
    assert code == 0, err
    cov = json.loads((tmp_path / "m.json").read_text())["coverage"]
    assert cov["rows_with_tags"] == 1 and cov["mean"] == pytest.approx(1.0)
    assert "1 of 2" in out


# -- one writer per output; nothing left by a failed start ---------------------------------------------------------

def _earlier_output(path: Path) -> Path:
    write_jsonl(path, [{"id": "kept", "tags": ["rock"], "caption": "an earlier, finished line",
                        "provenance": {"caption": {"model": "tiny"}}}])
    path.with_name(path.name + ".config.yaml").write_text("task_name: earlier\n")
    return path


def test_overwrite_while_another_run_writes_is_refused_and_its_output_kept(tmp_path, tags_jsonl):
    from tagtune.files.resumable import JsonlAppender

    out = _earlier_output(tmp_path / "caps.jsonl")
    sidecar = out.with_name(out.name + ".config.yaml")
    before = out.read_bytes(), sidecar.read_bytes()
    with JsonlAppender(out, key="id"):  # the first run, still writing
        code, _, err = run_cli("caption", "infer", str(tags_jsonl(3)), "--preset", "quick_test", "--overwrite",
                               "-o", str(out))
        assert code == 2  # before: the output was deleted first, and both runs went on writing
        error_line(err, f"{out} is in use by another tagtune process")
        assert (out.read_bytes(), sidecar.read_bytes()) == before
    code, _, err = run_cli("caption", "infer", str(tags_jsonl(3)), "--preset", "quick_test", "--overwrite",
                           "-o", str(out))
    assert code == 0, err  # once the first run is done, --overwrite starts over
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 3 and "kept" not in {r["id"] for r in lines}


def test_overwrite_while_a_shard_writes_its_part_deletes_nothing(tmp_path, tags_jsonl):
    from tagtune.files.resumable import JsonlAppender

    tags, out = str(tags_jsonl(4)), tmp_path / "caps.jsonl"
    assert run_cli("caption", "infer", tags, "--preset", "quick_test", "--shard", "0/2", "-o", str(out)).code == 0
    part = next(tmp_path.glob("caps.shard-*.jsonl"))
    _earlier_output(out)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with JsonlAppender(part, key="id"):  # shard 0 is running again
        code, _, err = run_cli("caption", "infer", tags, "--preset", "quick_test", "--overwrite", "-o", str(out))
    assert code == 2
    error_line(err, f"{part} is in use by another tagtune process")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_a_model_that_cannot_load_leaves_no_new_output(tmp_path, tags_jsonl):
    out = tmp_path / "new" / "caps.jsonl"
    code, _, err = run_cli("caption", "infer", str(tags_jsonl(3)), "--preset", "quick_test",
                           "model.name=/nonexistent", "-o", str(out))
    assert code == 2
    error_line(err, "/nonexistent", only=False)
    assert not out.exists() and not out.with_name(out.name + ".config.yaml").exists()  # before: a 0-byte output


def test_overwrite_with_a_model_that_cannot_load_keeps_the_old_output(tmp_path, tags_jsonl):
    out = _earlier_output(tmp_path / "caps.jsonl")
    before = out.read_bytes()
    code, _, err = run_cli("caption", "infer", str(tags_jsonl(3)), "--preset", "quick_test", "--overwrite",
                           "model.name=/nonexistent", "-o", str(out))
    assert code == 2
    error_line(err, "/nonexistent", only=False)
    assert out.read_bytes() == before  # the model loads before anything is deleted


# -- the fine-tuning summary without validation --------------------------------------------------------------------

def test_finetune_summary_without_validation_says_why(tmp_path):
    code, out, err = run_cli("caption", "finetune", "--preset", "quick_test", "data.val_fraction=0", "data.limit=16",
                             "trainer.max_epochs=1", "finetune.sample_captions=0", "-o", str(tmp_path / "lora"))
    assert code == 0, err
    text = " ".join(out.split())
    assert "validation: none (data.val_fraction=0)" in text and "(best -)" not in text


# -- a directory given as a file -------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["infer input", "infer taxonomy", "predictions", "reference", "train", "taxonomy"])
def test_a_directory_given_as_a_file_says_so(where, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    preds = str(write_jsonl(tmp_path / "caps.jsonl", PREDS))
    args = {
        "infer input": ["caption", "infer", str(folder), "--preset", "quick_test"],
        "infer taxonomy": ["caption", "infer", "--preset", "quick_test", f"data.taxonomy_path={folder}"],
        "predictions": ["caption", "evaluate", str(folder)],
        "reference": ["caption", "evaluate", preds, "--reference", str(folder)],
        "train": ["caption", "evaluate", preds, "--train", str(folder)],
        "taxonomy": ["caption", "evaluate", preds, "--taxonomy", str(folder)],
    }[where]
    code, _, err = run_cli(*args, "-o", str(tmp_path / "out.json"))
    assert code == 2
    msg = error_line(err, str(folder), "is a directory", only=False)
    assert "does not exist" not in msg
