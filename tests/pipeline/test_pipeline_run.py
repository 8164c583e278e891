"""`tagtune pipeline run` end to end on the tiny models: dataset, resume after SIGKILL, --force, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_quick_test_pipeline_builds_a_dataset_reruns_as_a_no_op_and_exports(tagtune_cli, tmp_path):
    out = tmp_path / "ds"
    first = tagtune_cli("pipeline", "run", "--preset", "quick_test", "-o", out)
    assert first.returncode == 0, first.stderr
    meta = _lines(out / "dataset" / "metadata.jsonl")
    assert len(meta) == 6 and len({m["id"] for m in meta}) == 6
    for row in meta:
        for key in ("id", "caption", "aspect_list", "genre", "mood", "instrument", "tempo", "file_name", "split"):
            assert key in row
        assert row["caption"].strip()
        info = sf.info(str(out / "dataset" / row["file_name"]))
        assert info.frames > 0
    assert len(list((out / "dataset" / "audio").iterdir())) == 6
    assert (out / "dataset" / "README.md").is_file() and len(list((out / "dataset" / "plots").glob("*.png"))) == 3
    for stage in ("vae", "caption", "tta"):
        manifest = json.loads((out / stage / "manifest.json").read_text())
        assert manifest["status"] == "complete" and manifest["config_hash"]
        assert (out / stage / "config.yaml").is_file()

    before = _snapshot(out / "vae") | _snapshot(out / "caption") | _snapshot(out / "tta")
    again = tagtune_cli("pipeline", "run", "--preset", "quick_test", "-o", out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("already complete: skipped") == 3
    assert (_snapshot(out / "vae") | _snapshot(out / "caption") | _snapshot(out / "tta")) == before

    exported = tagtune_cli("dataset", "export", out, "--format", "parquet")
    assert exported.returncode == 0, exported.stderr
    frames = {p.stem: pd.read_parquet(p) for p in (out / "export").glob("*.parquet")}
    assert sum(len(f) for f in frames.values()) == 6
    for split, frame in frames.items():
        assert set(frame["split"]) == {split}
        assert {"id", "caption", "aspect_list", "genre", "mood", "instrument", "tempo", "file_name", "audio"} <= set(frame.columns)

    changed = tagtune_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "vae:model.hidden_dim=16")
    assert changed.returncode == 2
    assert "--force vae" in changed.stderr and len(changed.stderr.strip().splitlines()) == 1


def test_sigkill_during_captions_resumes_without_redoing_or_duplicating(tmp_path):
    out = tmp_path / "ds"
    argv = [sys.executable, "-m", "tagtune", "pipeline", "run", "--preset", "quick_test", "-n", "16", "-o", str(out),
            "caption:generation.batch_size=2"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    captions = out / "caption" / "captions.jsonl"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if captions.is_file() and captions.read_text().count("\n") >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = captions.read_text().count("\n")
    assert 2 <= done_before < 16
    assert json.loads((out / "caption" / "manifest.json").read_text())["status"] == "running"
    vae_before = _snapshot(out / "vae")

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "[vae] already complete" in rerun.stdout and "[caption] running (resuming" in rerun.stdout
    assert _snapshot(out / "vae") == vae_before
    ids = [r["id"] for r in _lines(captions)]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert all(r["caption"].strip() for r in _lines(captions))
    meta = _lines(out / "dataset" / "metadata.jsonl")
    assert sorted(m["id"] for m in meta) == sorted(ids)
    assert len(list((out / "dataset" / "audio").iterdir())) == 16

    caption_before = _snapshot(out / "caption")
    forced = subprocess.run([*argv, "--force", "tta"], capture_output=True, text=True, timeout=600)
    assert forced.returncode == 0, forced.stderr
    assert "[caption] already complete" in forced.stdout and "[tta] running" in forced.stdout
    assert _snapshot(out / "caption") == caption_before
    assert len(_lines(out / "tta" / "metadata.jsonl")) == 16
