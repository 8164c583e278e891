"""Failure injection: SIGKILL at random points of the long jobs, a full disk, an unwritable output.

After every rerun the outputs must be complete: every JSONL line parses, no id repeats, every
audio file reads back and the metadata matches the files one to one.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
import soundfile as sf

from helpers import count_lines, read_jsonl, run_cli, run_tagtune, signal_when, tagtune_argv

pytestmark = pytest.mark.slow
RNG = random.Random(20261127)  # random kill points, reproducible


def test_vae_train_killed_then_resumed_from_last_checkpoint(tmp_path):
    out = tmp_path / "vae"
    args = ("vae", "train", "-o", out, "trainer.max_epochs=400", "callbacks.early_stopping.enabled=false", "logger=none")
    last = out / "checkpoints" / "last.ckpt"
    delay = RNG.uniform(0.2, 1.5)
    seen = {}

    def ready() -> bool:
        if last.is_file() and "t" not in seen:
            seen["t"] = time.time()
        return "t" in seen and time.time() - seen["t"] > delay

    assert signal_when(tagtune_argv(*args), ready) == -signal.SIGKILL, "training finished before the kill"
    assert last.is_file() and not (out / "model.safetensors").exists()
    resumed = run_tagtune(*args)  # the same command: an unfinished run directory resumes from its last.ckpt
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {last}" in " ".join(resumed.stderr.split())
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "model.safetensors").is_file() and metrics["resumed_from"] == str(last)
    assert metrics["epochs"] == 400
    sample = run_tagtune("vae", "sample", "--model", out, "-n", "20", "-o", tmp_path / "s.jsonl")
    assert sample.returncode == 0, sample.stderr
    assert len(read_jsonl(tmp_path / "s.jsonl", complete=True)) == 20
    again = run_tagtune(*args)  # a finished model is not trained over
    assert again.returncode == 2 and "already holds a trained model" in again.stderr


@pytest.mark.parametrize("kill_after", [RNG.randint(1, 6), RNG.randint(7, 14)])
def test_caption_infer_killed_at_random_points(tmp_path, kill_after):
    out = tmp_path / "caps.jsonl"
    args = ("caption", "infer", "--preset", "quick_test", "--limit", "20", "--batch-size", "1", "-o", out)
    code = signal_when(tagtune_argv(*args), lambda: count_lines(out) >= kill_after)
    assert code == -signal.SIGKILL, "the run finished before the kill"
    rerun = run_tagtune(*args)
    assert rerun.returncode == 0, rerun.stderr
    rows = read_jsonl(out, complete=True)
    ids = [r["id"] for r in rows]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert all(isinstance(r["caption"], str) and r["caption"].strip() for r in rows)


def _prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"clip-{i:03d}", "caption": f"prompt number {i}"}) + "\n" for i in range(n)))
    return path


def _check_audio_dir(out: Path, n: int) -> None:
    meta = read_jsonl(out / "metadata.jsonl", complete=True)
    ids = [m["id"] for m in meta]
    assert len(ids) == n and len(set(ids)) == n
    files = sorted(p.name for p in (out / "audio").iterdir())
    assert files == sorted(Path(m["file_name"]).name for m in meta), "metadata and files differ"
    for m in meta:
        info = sf.info(str(out / m["file_name"]))
        assert info.frames > 0 and info.samplerate == m["sample_rate"]


def test_tta_generate_killed_at_a_random_point(tmp_path):
    prompts = _prompts(tmp_path / "p.jsonl", 16)
    out = tmp_path / "out"
    args = ("tta", "generate", prompts, "--preset", "quick_test", "--batch-size", "1", "-o", out)
    kill_after = RNG.randint(2, 10)
    assert signal_when(tagtune_argv(*args), lambda: count_lines(out / "metadata.jsonl") >= kill_after) == -signal.SIGKILL
    done = {m["file_name"]: (out / m["file_name"]).stat().st_mtime_ns for m in read_jsonl(out / "metadata.jsonl", skip_torn=True)}
    rerun = run_tagtune(*args)
    assert rerun.returncode == 0, rerun.stderr
    _check_audio_dir(out, 16)
    assert {f: (out / f).stat().st_mtime_ns for f in done} == done, "a finished clip was generated again"


@pytest.mark.parametrize("command", ["caption", "tta"])
def test_ctrl_c_stops_with_one_line_and_the_same_command_resumes(tmp_path, command):
    """SIGINT (Ctrl-C) mid-run: exit 130, one line saying what was kept; rerunning completes the job."""
    if command == "caption":
        out = tmp_path / "caps.jsonl"
        args = ("caption", "infer", "--preset", "quick_test", "--limit", "20", "--batch-size", "1", "-o", out)
        done, total = (lambda: count_lines(out)), 20
    else:
        out = tmp_path / "out"
        args = ("tta", "generate", _prompts(tmp_path / "p.jsonl", 16), "--preset", "quick_test", "--batch-size", "1", "-o", out)
        done, total = (lambda: count_lines(out / "metadata.jsonl")), 16
    log = tmp_path / "log.txt"
    code = signal_when(tagtune_argv(*args), lambda: done() >= 2, sig=signal.SIGINT, log=log)
    assert code == 130, log.read_text()
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and "Traceback" not in log.read_text(), log.read_text()
    assert lines[0].endswith("finished work is kept; run the same command again to resume")
    assert lines[0].startswith("interrupted during ")
    kept = done()
    assert 2 <= kept < total
    rerun = run_tagtune(*args)
    assert rerun.returncode == 0, rerun.stderr
    rows = read_jsonl(out, complete=True) if command == "caption" else read_jsonl(out / "metadata.jsonl", complete=True)
    assert len(rows) == total == len({r["id"] for r in rows})


def test_full_disk_while_captioning_is_one_line_and_the_next_run_completes(tmp_path, monkeypatch):
    out = tmp_path / "caps.jsonl"
    argv = ["caption", "infer", "--preset", "quick_test", "--limit", "8", "--batch-size", "2", "-o", str(out)]
    real_fsync, calls = os.fsync, {"n": 0}

    def fsync_fills_up(fd):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_fills_up)
    code, _, err = run_cli(*argv)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert code == 2 and "no space left" in err.lower() and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.startswith("error: ")]) == 1
    partial = read_jsonl(out, complete=True)
    assert 0 < len(partial) < 8
    code, _, err = run_cli(*argv)
    assert code == 0, err
    ids = [r["id"] for r in read_jsonl(out, complete=True)]
    assert len(ids) == len(set(ids)) == 8


def test_full_disk_while_writing_audio_leaves_no_partial_file(tmp_path, monkeypatch):
    prompts = _prompts(tmp_path / "p.jsonl", 6)
    out = tmp_path / "out"
    argv = ["tta", "generate", str(prompts), "--preset", "quick_test", "--batch-size", "2", "-o", str(out)]
    real_write, calls = sf.write, {"n": 0}

    def write_fills_up(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(sf, "write", write_fills_up)
    code, _, err = run_cli(*argv)
    monkeypatch.setattr(sf, "write", real_write)
    assert code == 2 and "no space left" in err.lower() and "Traceback" not in err
    leftovers = [p.name for p in (out / "audio").iterdir() if not p.name.endswith(".wav") or p.name.startswith(".")]
    assert leftovers == [], leftovers
    listed = {Path(m["file_name"]).name for m in read_jsonl(out / "metadata.jsonl", complete=True)}
    assert listed == {p.name for p in (out / "audio").iterdir()}
    code, _, err = run_cli(*argv)
    assert code == 0, err
    _check_audio_dir(out, 6)


def test_unwritable_output_directory_writes_nothing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    code, _, err = run_cli("caption", "infer", "--preset", "quick_test", "--limit", "2", "-o", blocker / "caps.jsonl")
    assert code == 2 and "blocker" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "a file where a directory should be"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        code, _, err = run_cli("tta", "generate", _prompts(tmp_path / "p.jsonl", 2), "--preset", "quick_test", "-o", ro / "out")
        assert code == 2 and "writable" in err


@pytest.mark.parametrize("command", ["vae", "finetune"])
def test_ctrl_c_during_training_resumes_from_its_own_checkpoint(tmp_path, command):
    """SIGINT mid-training: exit 130 with one line; the same command resumes from that run's last.ckpt and
    the checkpoint names stay unambiguous (no last-v1.ckpt)."""
    out = tmp_path / "run"
    keep_last = ("callbacks=default", "callbacks.early_stopping.enabled=false")  # quick_test saves no checkpoints
    if command == "vae":  # (more epochs than anyone waits for: the signal lands mid-training)
        args = ("vae", "train", "--preset", "quick_test", "-o", out, "trainer.max_epochs=5000", *keep_last)
    else:
        args = ("caption", "finetune", "--preset", "quick_test", "-o", out, "trainer.max_epochs=500", *keep_last)
    last = out / "checkpoints" / "last.ckpt"
    log = tmp_path / "log.txt"
    code = signal_when(tagtune_argv(*args), last.is_file, sig=signal.SIGINT, log=log)
    text = log.read_text()
    assert code == 130, text
    assert "Traceback" not in text and len([ln for ln in text.splitlines() if ln.startswith("interrupted")]) == 1, text
    shorter = [a for a in args if not str(a).startswith("trainer.max_epochs")]  # resume, then stop soon
    epochs = torch_load_epoch(last) + 3
    resumed = run_tagtune(*shorter, f"trainer.max_epochs={epochs}")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from {last}" in " ".join(resumed.stderr.split())
    assert not list((out / "checkpoints").glob("last-v*.ckpt")) if (out / "checkpoints").is_dir() else True
    weights = "model.safetensors" if command == "vae" else "adapter_model.safetensors"
    assert (out / weights).is_file()


def test_ctrl_c_during_a_pipeline_run_resumes_to_the_same_dataset(tmp_path):
    out = tmp_path / "run"
    args = ("pipeline", "run", "--preset", "quick_test", "-o", out, "-n", "12", "tta:generation.batch_size=1")
    log = tmp_path / "log.txt"
    code = signal_when(tagtune_argv(*args), lambda: count_lines(out / "tta" / "metadata.jsonl") >= 2,
                       sig=signal.SIGINT, log=log)
    text = log.read_text()
    assert code == 130 and "Traceback" not in text, text
    assert len([ln for ln in text.splitlines() if ln.startswith("interrupted")]) == 1, text
    kept = {r["id"] for r in read_jsonl(out / "tta" / "metadata.jsonl", skip_torn=True)}
    rerun = run_tagtune(*args)
    assert rerun.returncode == 0, rerun.stderr
    rows = read_jsonl(out / "tta" / "metadata.jsonl", complete=True)
    assert len(rows) == 12 == len({r["id"] for r in rows}) and kept <= {r["id"] for r in rows}
    assert (out / "dataset" / "README.md").is_file()


def torch_load_epoch(ckpt: Path) -> int:
    import torch

    return int(torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"])
