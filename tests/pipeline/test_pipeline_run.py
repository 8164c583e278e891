"""`tagtune pipeline run` end to end on the tiny models: dataset, resume after SIGKILL, --force, start files, export."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from helpers import (
    count_lines,
    error_line,
    read_jsonl,
    run_cli,
    run_tagtune,
    signal_when,
    tagtune_argv,
    write_jsonl,
)
from tagtune.pipeline.dataset import METADATA, split_counts

pytestmark = pytest.mark.slow
CATEGORIES = ("genre", "mood", "instrument", "tempo")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def _dataset_rows(ds: Path) -> list[dict]:
    return [dict(r, split=split) for split in ("train", "validation", "test") if (ds / split / METADATA).is_file()
            for r in pd.read_parquet(ds / split / METADATA).to_dict("records")]


def test_quick_test_pipeline_builds_a_dataset_reruns_as_a_no_op_and_exports(tagtune_cli, tmp_path):
    out = tmp_path / "ds"
    first = tagtune_cli("pipeline", "run", "--preset", "quick_test", "-o", out)
    assert first.returncode == 0, first.stderr
    # (rich wraps the summary at 80 columns when stdout is not a terminal: compare words)
    assert f"Dataset: {out / 'dataset'} (6 items: train" in " ".join(first.stdout.split())
    meta = _dataset_rows(out / "dataset")
    assert len(meta) == 6 and len({m["id"] for m in meta}) == 6
    for row in meta:
        for key in ("id", "caption", "tags", *CATEGORIES, "file_name", "provenance"):
            assert key in row
        assert "aspect_list" not in row
        assert row["caption"].strip() and list(row["tags"])
        assert set(row["provenance"]) >= {"tags", "caption", "audio"}  # every stage says how it made the row
        info = sf.info(str(out / "dataset" / row["split"] / row["file_name"]))
        assert info.frames > 0
    assert sum(len(list((out / "dataset" / s / "audio").iterdir())) for s in split_counts(out / "dataset")) == 6
    assert (out / "dataset" / "README.md").is_file() and len(list((out / "dataset" / "plots").glob("*.png"))) == 3
    for stage in ("vae", "caption", "tta", "verify"):
        manifest = json.loads((out / stage / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["config_hash"]
    assert (out / "config.yaml").is_file() and (out / "tta" / "config.yaml").is_file()
    assert (out / "vae" / "model" / "config.yaml").is_file() and (out / "caption" / "captions.jsonl.config.yaml").is_file()
    assert [r["id"] for r in read_jsonl(out / "vae" / "tags.jsonl")] == sorted(m["id"] for m in meta)

    before = _snapshot(out / "vae") | _snapshot(out / "caption") | _snapshot(out / "tta")
    again = tagtune_cli("pipeline", "run", "--preset", "quick_test", "-o", out)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already complete: skipped") == 4  # stage notes go to stderr
    assert (_snapshot(out / "vae") | _snapshot(out / "caption") | _snapshot(out / "tta")) == before

    exported = tagtune_cli("dataset", "export", out, "--format", "parquet")
    assert exported.returncode == 0, exported.stderr
    frames = {p.stem.split("-")[0]: pd.read_parquet(p) for p in (out / "export-parquet" / "data").glob("*.parquet")}
    assert sum(len(f) for f in frames.values()) == 6 and set(frames) == set(split_counts(out / "dataset"))
    for frame in frames.values():
        assert {"id", "caption", "tags", *CATEGORIES, "audio"} <= set(frame.columns)

    changed = tagtune_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "vae:model.hidden_dim=16")
    assert changed.returncode == 2
    # the progress line of the run that stopped may precede the error on stderr
    error_line(changed.stderr, "the vae stage", "different config", "--force vae", only=False)


def test_sigkill_during_captions_resumes_without_redoing_or_duplicating(tmp_path):
    out = tmp_path / "ds"
    args = ["pipeline", "run", "--preset", "quick_test", "-n", "16", "-o", out, "caption:generation.batch_size=2"]
    captions = out / "caption" / "captions.jsonl"
    code = signal_when(tagtune_argv(*args), lambda: count_lines(captions) >= 2)
    assert code == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = count_lines(captions)
    assert 2 <= done_before < 16
    assert json.loads((out / "caption" / "manifest.json").read_text())["status"] == "running"
    vae_before = _snapshot(out / "vae")

    rerun = run_tagtune(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert "[vae] already complete" in rerun.stderr and "[caption] running (resuming earlier work)" in rerun.stderr
    assert _snapshot(out / "vae") == vae_before
    rows = read_jsonl(captions, complete=True)
    ids = [r["id"] for r in rows]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert all(r["caption"].strip() for r in rows)
    meta = _dataset_rows(out / "dataset")
    assert sorted(m["id"] for m in meta) == sorted(ids)

    caption_before = _snapshot(out / "caption")
    forced = run_tagtune(*args, "--force", "tta")
    assert forced.returncode == 0, forced.stderr
    assert "[caption] already complete" in forced.stderr and "[tta] --force: removed" in forced.stderr
    assert "[tta] running" in forced.stderr
    assert _snapshot(out / "caption") == caption_before
    assert len(read_jsonl(out / "tta" / "metadata.jsonl")) == 16


def test_start_from_your_own_captions_keeps_your_columns(tmp_path):
    captions = write_jsonl(tmp_path / "mine.jsonl", [
        {"id": f"m{i}", "tags": tags, "caption": f"a {' and '.join(tags)} piece", "source": "mine", "take": i}
        for i, tags in enumerate([["rock", "energetic"], ["jazz", "calm"], ["piano"], ["ambient", "slow tempo"]])])
    out = tmp_path / "ds"
    code, stdout, err = run_cli("pipeline", "run", "--preset", "quick_test", "--captions", captions, "-o", out)
    assert code == 0, err
    assert not (out / "vae").exists() and not (out / "caption").exists()
    rows = {r["id"]: r for r in _dataset_rows(out / "dataset")}
    assert sorted(rows) == ["m0", "m1", "m2", "m3"]
    assert rows["m1"]["caption"] == "a jazz and calm piece" and list(rows["m1"]["mood"]) == ["calm"]
    assert (rows["m2"]["source"], rows["m2"]["take"]) == ("mine", 2)  # user columns ride along into the dataset
    assert set(rows["m0"]["provenance"]) == {"audio", "verify"}  # the stages that ran say how they made the row
    provenance = json.loads((out / "dataset" / "provenance.json").read_text())
    assert provenance["started_from"] == {"vae": str(captions), "caption": str(captions)}


def test_start_from_your_own_tag_sets(tmp_path):
    tags = write_jsonl(tmp_path / "tags.jsonl", [{"id": f"t{i}", "tags": t} for i, t in
                                                 enumerate([["rock"], ["jazz", "piano"], ["calm", "slow tempo"]])])
    out = tmp_path / "ds"
    code, _, err = run_cli("pipeline", "run", "--preset", "quick_test", "--tags", tags, "-o", out)
    assert code == 0, err
    assert not (out / "vae").exists()
    assert [r["id"] for r in read_jsonl(out / "caption" / "captions.jsonl")] == ["t0", "t1", "t2"]
    assert sorted(r["id"] for r in _dataset_rows(out / "dataset")) == ["t0", "t1", "t2"]


def test_a_second_run_into_the_same_folder_is_refused_while_one_is_running(tmp_path):
    from tagtune.files.resumable import locked

    out = tmp_path / "ds"
    with locked(out / ".tagtune-pipeline.lock", hint="test"):
        code, _, err = run_cli("pipeline", "run", "--preset", "quick_test", "-o", out)
    assert code == 2
    error_line(err, ".tagtune-pipeline.lock", "in use by another tagtune process")
    assert not (out / "vae").exists()


def test_start_files_and_stages_are_checked_before_any_work(tmp_path):
    out = tmp_path / "ds"
    code, _, err = run_cli("pipeline", "run", "--preset", "quick_test", "--tags", tmp_path / "none.jsonl", "-o", out)
    assert code == 2 and "none.jsonl does not exist" in error_line(err)
    code, _, err = run_cli("pipeline", "run", "--preset", "quick_test", "--stages", "vae,lyrics", "-o", out)
    assert code == 2 and "lyrics" in error_line(err)
    code, _, err = run_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "tta:generation.batch_size=0")
    assert code == 2 and "generation.batch_size" in error_line(err)
    assert not out.exists()


@pytest.mark.slow
def test_config_dir_reaches_every_stage(tmp_path):
    """A model option of yours in --config-dir is found by the stages' configs too (tta:model=tta/mine)."""
    mine = tmp_path / "mine" / "model" / "tta" / "mine.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("name: synth\nbackend: synth\nthreads: 1\nsample_rate: 8000\nmiss_rate: 0.0\n")
    out = tmp_path / "ds"
    res = run_cli("pipeline", "run", "--preset", "quick_test", "-n", "4", "--stages", "vae,caption,tta",
                  "--config-dir", tmp_path / "mine", "tta:model=tta/mine", "tta:generation.duration=1", "-o", out)
    assert res.code == 0, res.err
    rows = read_jsonl(out / "tta" / "metadata.jsonl")
    assert len(rows) == 4 and {r["sample_rate"] for r in rows} == {8000}
    assert sf.info(str(out / "tta" / rows[0]["file_name"])).samplerate == 8000
