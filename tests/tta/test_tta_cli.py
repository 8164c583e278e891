"""The real CLI: acceptance runs in subprocesses (generate, evaluate, SIGKILL + resume), errors in-process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

PROMPTS = [
    {"id": "calm", "caption": "a calm ambient piano piece"},
    {"id": "../../x", "caption": "energetic rock with loud drums", "tags": ["rock"]},
    {"caption": "melancholic jazz ballad", "duration": 0.5},
    {"id": "folk", "text": "happy folk tune with fiddle"},
]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread is fastest on a shared machine


def tagtune(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tagtune", *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    write_jsonl(work / "prompts.jsonl", PROMPTS)
    proc = tagtune("tta", "generate", "prompts.jsonl", "--preset", "quick_test", "-o", "out", cwd=work)
    return work, proc


@pytest.mark.slow
def test_generate_cli_writes_one_readable_clip_per_prompt(generated):
    work, proc = generated
    assert proc.returncode == 0, proc.stderr
    out = work / "out"
    lines = read_jsonl(out / "metadata.jsonl")
    assert len(lines) == len(PROMPTS) == len({r["id"] for r in lines})
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(Path(r["file_name"]).name for r in lines)
    assert sorted(p.name for p in work.iterdir()) == ["out", "prompts.jsonl"]  # ../../x stayed inside out/audio
    assert (out / "audio" / "x.wav").is_file()
    for rec in lines:
        info = sf.info(str(out / rec["file_name"]))
        assert info.samplerate == 16000 == rec["sample_rate"]  # the tiny model's rate
        want = 0.5 if rec["text"].startswith("melancholic") else 1.0
        assert abs(info.frames - want * info.samplerate) < 16000 / 50  # within one frame (exact here)
        assert rec["duration"] == want
    assert (out / "config.yaml").is_file()
    assert "4 clip(s) generated" in " ".join(proc.stdout.split())


@pytest.mark.slow
def test_evaluate_cli_prints_clap_and_fad_and_writes_csv(generated):
    work, _ = generated
    proc = tagtune("tta", "evaluate", "out", "--preset", "quick_test", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert "CLAP score" in proc.stdout and "FAD" in proc.stdout
    rows = (work / "out" / "scores" / "clap_scores.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "id,file_name,clap" and len(rows) == 1 + len(PROMPTS)
    assert json.loads((work / "out" / "scores" / "summary.json").read_text())["clips"] == len(PROMPTS)


@pytest.mark.slow
def test_sigkill_then_rerun_completes_without_generating_twice(tmp_path):
    n = 40
    write_jsonl(tmp_path / "p.jsonl", [{"id": f"c{i:02d}", "caption": f"prompt number {i}, piano and drums"} for i in range(n)])
    out = tmp_path / "out"
    meta = out / "metadata.jsonl"
    args = [sys.executable, "-m", "tagtune", "tta", "generate", "p.jsonl", "--preset", "quick_test", "-o", "out", "--batch-size", "1", "--duration", "0.2"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if meta.exists() and meta.read_bytes().count(b"\n") >= 3:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = [json.loads(x)["id"] for x in meta.read_bytes().split(b"\n") if x.strip().endswith(b"}")]
    assert 3 <= len(done_before) < n
    stamps = {i: ((out / "audio" / f"{i}.wav").stat().st_ino, (out / "audio" / f"{i}.wav").stat().st_mtime_ns) for i in done_before}

    rerun = subprocess.run(args, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    text = " ".join(rerun.stdout.split())
    generated, skipped, recovered = (int(re.search(p, text).group(1)) for p in
                                     (r"(\d+) clip\(s\) generated", r"(\d+) already done", r"(\d+) recovered"))
    assert skipped == len(done_before) and generated + skipped + recovered == n
    for ident, stamp in stamps.items():  # clips finished before the kill were not rendered again
        path = out / "audio" / f"{ident}.wav"
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    lines = read_jsonl(meta)
    assert sorted(r["id"] for r in lines) == [f"c{i:02d}" for i in range(n)]  # exactly one line per id
    visible = sorted(p.name for p in (out / "audio").iterdir() if not p.name.startswith("."))
    assert visible == [f"c{i:02d}.wav" for i in range(n)]
    for rec in lines:
        assert sf.info(str(out / rec["file_name"])).frames == 3200


@pytest.fixture
def cli(capsys):
    """Run ``tagtune.cli.main`` in-process; returns (exit code, stdout, stderr)."""
    from tagtune.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as info:
            main(list(args))
        captured = capsys.readouterr()
        return int(info.value.code or 0), captured.out, captured.err

    return run


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_malformed_jsonl_line_exits_2_naming_file_and_line(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "fine"}\n{"id": "b", "caption": \n', encoding="utf-8")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"))
    assert code == 2
    assert f"{path}:2: invalid JSON" in _one_error_line(err)
    assert not (tmp_path / "out").exists()  # validated before anything is written


def test_missing_text_names_file_line_field(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "fine"}\n{"id": "b", "caption": "  "}\n', encoding="utf-8")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"))
    assert code == 2 and f"{path}:2: field 'caption': empty prompt text" in _one_error_line(err)


def test_duplicate_ids_after_sanitising_exit_2(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a b", "caption": "x"}\n{"id": "a/b", "caption": "y"}\n', encoding="utf-8")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"))
    assert code == 2 and ":2: field 'id': id 'a/b' becomes 'a_b'" in _one_error_line(err)


def test_default_model_offline_exits_2_in_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "x"}\n', encoding="utf-8")
    start = time.perf_counter()
    code, _, err = cli("tta", "generate", str(path), "-o", str(tmp_path / "out"), "model.device=cpu")
    line = _one_error_line(err)
    assert code == 2 and "facebook/musicgen-small" in line and "--preset quick_test" in line
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("spec", ["2/2", "x", "1/0", "-1/4"])
def test_bad_shard_exits_2(cli, tmp_path, spec):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "x"}\n', encoding="utf-8")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"), f"--shard={spec}")
    assert code == 2 and "bad --shard" in _one_error_line(err)


def test_unwritable_output_dir_exits_2(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "x"}\n', encoding="utf-8")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(blocker / "out"))
    assert code == 2 and str(blocker / "out") in _one_error_line(err)
    if os.geteuid() != 0:  # root ignores directory permissions
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(ro / "out"))
        assert code == 2 and "not writable" in _one_error_line(err)


def test_merge_cli_reports_and_fails_on_duplicates(cli, tmp_path):
    import numpy as np

    from tagtune.tta.audio import write_clip

    for ident in ("a", "b", "orphan"):
        write_clip(tmp_path / "audio" / f"{ident}.wav", np.full((1, 160), 0.1, np.float32), 16000, "wav", "PCM_16")
    line = lambda i, seed=1: json.dumps({"file_name": f"audio/{i}.wav", "id": i, "seed": seed}) + "\n"  # noqa: E731
    (tmp_path / "metadata.shard-00000-of-00002.jsonl").write_text(line("a"), encoding="utf-8")
    (tmp_path / "metadata.shard-00001-of-00002.jsonl").write_text(line("b") + line("a", 2), encoding="utf-8")
    code, _, err = cli("tta", "merge", str(tmp_path))
    assert code == 2 and "duplicate id 'a'" in _one_error_line(err)
    (tmp_path / "metadata.shard-00001-of-00002.jsonl").write_text(line("b"), encoding="utf-8")
    code, out, err = cli("tta", "merge", str(tmp_path))
    assert code == 0 and "merged 2 part(s)" in out and "audio/orphan.wav" in err
    assert [json.loads(x)["id"] for x in (tmp_path / "metadata.jsonl").read_text().splitlines()] == ["a", "b"]


def test_help_and_show_config(cli):
    code, out, _ = cli("tta", "generate", "--help")
    assert code == 0 and "$ tagtune tta generate" in out and "--shard" in out
    code, out, _ = cli("tta", "generate", "p.jsonl", "--preset", "quick_test", "--duration", "2.5", "--show-config")
    assert code == 0 and "path: p.jsonl" in out and "duration: 2.5" in out and "name: tiny" in out
