"""Failure injection: SIGKILL at random points of the long jobs, a full disk, an unwritable output.

After every rerun the outputs must be complete: every JSONL line parses, no id repeats, every
audio file reads back and the metadata matches the files one to one.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

pytestmark = pytest.mark.slow
RNG = random.Random(20261127)  # random kill points, reproducible


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tagtune", *map(str, args)]


def _kill_when(argv: list[str], ready, timeout: float = 300) -> int:
    """Start ``argv``, SIGKILL it once ``ready()`` is true (polled), return its exit status."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if ready():
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode


def _lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "torn last line"
    return [json.loads(x) for x in text.splitlines()]


def _count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


def _run_main(argv: list[str]) -> tuple[int, str]:
    from tagtune.cli import main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, err.getvalue()


def test_vae_train_killed_then_resumed_from_last_checkpoint(tmp_path):
    out = tmp_path / "vae"
    argv = _cli("vae", "train", "-o", out, "trainer.max_epochs=400", "callbacks.early_stopping.enabled=false", "logger=none")
    last = out / "checkpoints" / "last.ckpt"
    delay = RNG.uniform(0.2, 1.5)
    seen = {}

    def ready() -> bool:
        if last.is_file() and "t" not in seen:
            seen["t"] = time.time()
        return "t" in seen and time.time() - seen["t"] > delay

    assert _kill_when(argv, ready) == -signal.SIGKILL, "training finished before the kill"
    assert last.is_file() and not (out / "model.safetensors").exists()
    resumed = subprocess.run([*argv, f"ckpt_path={last}"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "model.safetensors").is_file()
    sample = subprocess.run(_cli("vae", "sample", "--model", out, "-n", "20", "-o", tmp_path / "s.jsonl"), capture_output=True, text=True)
    assert sample.returncode == 0, sample.stderr
    assert len(_lines(tmp_path / "s.jsonl")) == 20
    assert metrics  # the resumed run wrote its metrics


@pytest.mark.parametrize("kill_after", [RNG.randint(1, 6), RNG.randint(7, 14)])
def test_caption_infer_killed_at_random_points(tmp_path, kill_after):
    out = tmp_path / "caps.jsonl"
    argv = _cli("caption", "infer", "--preset", "quick_test", "--limit", "20", "--batch-size", "1", "-o", out)
    code = _kill_when(argv, lambda: _count(out) >= kill_after)
    assert code == -signal.SIGKILL, "the run finished before the kill"
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    rows = _lines(out)
    ids = [r["id"] for r in rows]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert all(isinstance(r["caption"], str) and r["caption"].strip() for r in rows)


def _prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"clip-{i:03d}", "caption": f"prompt number {i}"}) + "\n" for i in range(n)))
    return path


def _check_audio_dir(out: Path, n: int) -> None:
    meta = _lines(out / "metadata.jsonl")
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
    argv = _cli("tta", "generate", prompts, "--preset", "quick_test", "--batch-size", "1", "-o", out)
    kill_after = RNG.randint(2, 10)
    assert _kill_when(argv, lambda: _count(out / "metadata.jsonl") >= kill_after) == -signal.SIGKILL
    done = {m["file_name"]: (out / m["file_name"]).stat().st_mtime_ns for m in _lines(out / "metadata.jsonl")}
    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    _check_audio_dir(out, 16)
    assert {f: (out / f).stat().st_mtime_ns for f in done} == done, "a finished clip was generated again"


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
    code, err = _run_main(argv)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert code == 2 and "no space left" in err.lower() and "Traceback" not in err
    partial = _lines(out)
    assert 0 < len(partial) < 8
    code, err = _run_main(argv)
    assert code == 0, err
    assert sorted(r["id"] for r in _lines(out)) == sorted({r["id"] for r in _lines(out)}) and len(_lines(out)) == 8


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
    code, err = _run_main(argv)
    monkeypatch.setattr(sf, "write", real_write)
    assert code == 2 and "no space left" in err.lower() and "Traceback" not in err
    leftovers = [p.name for p in (out / "audio").iterdir() if not p.name.endswith(".wav") or p.name.startswith(".")]
    assert leftovers == [], leftovers
    listed = {Path(m["file_name"]).name for m in _lines(out / "metadata.jsonl")}
    assert listed == {p.name for p in (out / "audio").iterdir()}
    code, err = _run_main(argv)
    assert code == 0, err
    _check_audio_dir(out, 6)


def test_unwritable_output_directory_writes_nothing(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    code, err = _run_main(["caption", "infer", "--preset", "quick_test", "--limit", "2", "-o", str(blocker / "caps.jsonl")])
    assert code == 2 and "blocker" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "a file where a directory should be"
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        code, err = _run_main(["tta", "generate", str(_prompts(tmp_path / "p.jsonl", 2)), "--preset", "quick_test", "-o", str(ro / "out")])
        assert code == 2 and "writable" in err
