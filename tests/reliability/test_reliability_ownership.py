"""User files are never removed or overwritten: output folders tagtune did not make, files it did not write."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import run_cli, write_jsonl

pytestmark = pytest.mark.slow


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my notes\n")
    (path / "config.yaml").write_text("mine: true\n")
    return path


@pytest.mark.parametrize("argv", [
    ("vae", "train", "--preset", "quick_test"),
    ("caption", "finetune", "--preset", "quick_test"),
    ("pipeline", "run", "--preset", "quick_test"),
    ("tta", "generate", "PROMPTS", "--preset", "quick_test"),
])
def test_a_non_empty_folder_tagtune_did_not_make_is_refused(tmp_path, argv):
    out = _user_folder(tmp_path / "mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "calm piano"}])
    res = run_cli(*[str(prompts) if a == "PROMPTS" else a for a in argv], "-o", out)
    assert res.code == 2 and "was not made by tagtune: nothing was written" in res.error(only=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_files_that_are_not_ours_are_never_overwritten(tmp_path):
    mine = tmp_path / "mine.jsonl"
    write_jsonl(mine, [{"id": "x", "tags": ["rock"], "note": "my data"}])
    before = mine.read_bytes()
    model = tmp_path / "model"
    assert run_cli("vae", "train", "--preset", "quick_test", "-o", model).code == 0
    for argv in (("vae", "sample", "--model", model, "-n", "5", "-o", mine),
                 ("caption", "infer", "--preset", "quick_test", "--limit", "2", "-o", mine),
                 ("vae", "evaluate", "pkg:demo_tags.jsonl", "--reference", "pkg:demo_tags.jsonl", "-o", mine)):
        res = run_cli(*argv)
        assert res.code == 2, res.err
        assert f"{mine} exists and was not written by" in res.error(only=False)
        assert mine.read_bytes() == before
    # an earlier output of the same command is ours: it is replaced
    ours = tmp_path / "ours.jsonl"
    for _ in range(2):
        assert run_cli("vae", "sample", "--model", model, "-n", "5", "-o", ours).code == 0


def test_force_removes_only_what_the_stage_wrote(tmp_path):
    out = tmp_path / "run"
    assert run_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "-n", "4").code == 0
    (out / "tta" / "notes.txt").write_text("mine\n")
    (out / "tta" / "audio" / "mine.wav").write_bytes((out / "tta" / "audio" / "s42-000000.wav").read_bytes())
    (out / "vae" / "my_model_notes.md").write_text("mine\n")
    res = run_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "-n", "4", "--force", "tta")
    assert res.code == 0, res.err
    assert (out / "tta" / "notes.txt").read_text() == "mine\n" and (out / "tta" / "audio" / "mine.wav").is_file()
    assert (out / "vae" / "my_model_notes.md").is_file()
    assert "file(s) it did not write" in " ".join(res.err.split())
    assert len(list((out / "tta" / "audio").glob("s42-*.wav"))) == 4  # rendered again
