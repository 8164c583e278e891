"""The real CLI: acceptance runs in subprocesses (generate, evaluate, SIGKILL + resume), errors in-process."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

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
from tagtune.files.ids import safe_id

PROMPTS = [
    {"id": "calm", "caption": "a calm ambient piano piece"},
    {"id": "../../x", "caption": "energetic rock with loud drums", "tags": ["rock"]},
    {"caption": "melancholic jazz ballad", "duration": 0.5},
    {"id": "folk", "caption": "happy folk tune with fiddle"},
]

ENV = {"OMP_NUM_THREADS": "1"}  # tiny models: one thread is fastest on a shared machine


def tagtune(*args: str, cwd: Path, timeout: float = 300):
    return run_tagtune(*args, cwd=cwd, env=ENV, timeout=timeout)


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
    lines = read_jsonl(out / "metadata.jsonl", complete=True)
    assert len(lines) == len(PROMPTS) == len({r["id"] for r in lines})
    assert {r["id"] for r in lines} == {"calm", "../../x", "row-000003", "folk"}  # ids verbatim; no id: its line
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(Path(r["file_name"]).name for r in lines)
    assert sorted(p.name for p in work.iterdir()) == ["out", "prompts.jsonl"]  # ../../x stayed inside out/audio
    assert (out / "audio" / f"{safe_id('../../x')}.wav").is_file() and safe_id("../../x").startswith("x-")
    for rec in lines:
        info = sf.info(str(out / rec["file_name"]))
        assert info.samplerate == 16000 == rec["sample_rate"]  # the tiny model's rate
        want = 0.5 if rec["caption"].startswith("melancholic") else 1.0
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
    assert rows[0] == "id,file_name,clap,fad_tiny" and len(rows) == 1 + len(PROMPTS)
    assert "FAD (CLAP)" in proc.stdout and "eval_manifest.json" in " ".join(proc.stdout.split())
    assert json.loads((work / "out" / "scores" / "summary.json").read_text())["clips"] == len(PROMPTS)
    proc = tagtune("tta", "evaluate", "out", "--preset", "quick_test", "--reference", "out/audio", "-o", "ev", cwd=work)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((work / "ev" / "summary.json").read_text())
    assert summary["reference_clips"] == len(PROMPTS)
    assert summary["fad"]["clap"]["value"] == pytest.approx(0.0, abs=1e-6) and summary["fad"]["tiny"]["value"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_sigkill_then_rerun_completes_without_generating_twice(tmp_path):
    n = 40
    write_jsonl(tmp_path / "p.jsonl", [{"id": f"c{i:02d}", "caption": f"prompt number {i}, piano and drums"} for i in range(n)])
    out = tmp_path / "out"
    meta = out / "metadata.jsonl"
    args = ["tta", "generate", "p.jsonl", "--preset", "quick_test", "-o", "out", "--batch-size", "1", "--duration", "0.2"]
    code = signal_when(tagtune_argv(*args), lambda: count_lines(meta) >= 3, cwd=tmp_path, env=ENV, poll=0.005, timeout=120)
    assert code == -signal.SIGKILL, "finished before it could be killed"
    done_before = [r["id"] for r in read_jsonl(meta, skip_torn=True)]
    assert 3 <= len(done_before) < n
    stamps = {i: ((out / "audio" / f"{i}.wav").stat().st_ino, (out / "audio" / f"{i}.wav").stat().st_mtime_ns) for i in done_before}

    rerun = tagtune(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    text = " ".join(rerun.stdout.split())
    generated, skipped, redone = (int(re.search(p, text).group(1)) for p in
                                  (r"(\d+) clip\(s\) generated", r"(\d+) already done", r"(\d+) rendered again"))
    assert skipped == len(done_before) and generated + skipped == n and redone == 0
    for ident, stamp in stamps.items():  # clips finished before the kill were not rendered again
        path = out / "audio" / f"{ident}.wav"
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp
    lines = read_jsonl(meta, complete=True)
    assert sorted(r["id"] for r in lines) == [f"c{i:02d}" for i in range(n)]  # exactly one line per id
    visible = sorted(p.name for p in (out / "audio").iterdir() if not p.name.startswith("."))
    assert visible == [f"c{i:02d}.wav" for i in range(n)]
    for rec in lines:
        assert sf.info(str(out / rec["file_name"])).frames == 3200


def _one_error_line(err: str) -> str:
    return error_line(err)


@pytest.fixture
def cli():
    """``tagtune`` in this process: ``cli(*args) -> (exit code, stdout, stderr)``."""
    return run_cli


def test_malformed_jsonl_line_exits_2_naming_file_and_line(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "fine"}\n{"id": "b", "caption": \n', encoding="utf-8")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"))
    assert code == 2
    assert f"{path}:2: invalid JSON" in _one_error_line(err)
    assert not (tmp_path / "out").exists()  # validated before anything is written


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"id": "a", "caption": "fine"}', '{"id": "b", "caption": "  "}'], ":2: field 'caption': caption is empty"),
        (['{"id": "a", "caption": "fine"}', '{"id": "b"}'], ":2: field 'caption': caption is empty"),
        # the caption column is decided by the first line: a later line spelling it `text` has none
        (['{"id": "a", "caption": "fine"}', '{"id": "b", "text": "also fine"}'], ":2: field 'caption': caption is empty"),
        (['{"id": "a", "caption": 5}'], ":1: field 'caption'"),
        (['{"id": "a", "caption": "x", "duration": "long"}'], ":1: field 'duration': duration 'long' is not a number"),
    ],
)
def test_missing_text_names_file_line_field(cli, tmp_path, lines, message):
    path = write_jsonl(tmp_path / "p.jsonl", lines)
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"))
    assert code == 2 and f"{path}{message}" in _one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_duplicate_ids_exit_2_and_ids_differing_in_unsafe_characters_do_not_collide(cli, tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a/b", "caption": "x"}\n{"id": "a/b", "caption": "y"}\n', encoding="utf-8")
    code, _, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"))
    assert code == 2 and ":2: field 'id': duplicate id 'a/b' (first on line 1)" in _one_error_line(err)
    path.write_text('{"id": "a b", "caption": "x"}\n{"id": "a/b", "caption": "y"}\n{"id": "a_b", "caption": "z"}\n',
                    encoding="utf-8")
    code, out, err = cli("tta", "generate", str(path), "--preset", "quick_test", "-o", str(tmp_path / "out"),
                         "--duration", "0.1")
    assert code == 0, err
    names = [r["file_name"] for r in read_jsonl(tmp_path / "out" / "metadata.jsonl")]
    assert len(set(names)) == 3 and "audio/a_b.wav" in names


def test_default_model_offline_exits_2_in_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "caption": "x"}\n', encoding="utf-8")
    start = time.perf_counter()
    code, _, err = cli("tta", "generate", str(path), "-o", str(tmp_path / "out"), "device=cpu")
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
    line = lambda i, seed=1: json.dumps({"file_name": f"audio/{i}.wav", "id": i, "provenance": {"audio": {"seed": seed}}}) + "\n"  # noqa: E731
    (tmp_path / "metadata.shard-00000-of-00002.jsonl").write_text(line("a"), encoding="utf-8")
    (tmp_path / "metadata.shard-00001-of-00002.jsonl").write_text(line("b") + line("a", 2), encoding="utf-8")
    code, _, err = cli("tta", "merge", str(tmp_path))
    assert code == 2 and "duplicate id 'a'" in _one_error_line(err)
    (tmp_path / "metadata.shard-00001-of-00002.jsonl").write_text(line("b"), encoding="utf-8")
    code, out, err = cli("tta", "merge", str(tmp_path))
    assert code == 0 and "merged 2 part(s)" in out and "audio/orphan.wav" in err
    assert [r["id"] for r in read_jsonl(tmp_path / "metadata.jsonl", complete=True)] == ["a", "b"]


def test_help_and_show_config(cli):
    code, out, _ = cli("tta", "generate", "--help")
    assert code == 0 and "$ tagtune tta generate" in out and "--shard" in out
    code, out, _ = cli("tta", "generate", "p.jsonl", "--preset", "quick_test", "--duration", "2.5", "-o", "here",
                       "--limit", "3", "--shard", "1/2", "--format", "flac", "--seed", "7", "--show-config")
    import yaml

    cfg = yaml.safe_load(out)
    assert code == 0 and cfg["generation"]["duration"] == 2.5 and cfg["model"]["name"] == "tiny" and cfg["seed"] == 7
    assert cfg["generate"] | {"input": "p.jsonl", "output": "here", "limit": 3, "shard": "1/2", "format": "flac"} == cfg["generate"]
    code, out, _ = cli("tta", "evaluate", "out", "--reference-dir", "refs", "-o", "ev", "--show-config")
    assert code == 0 and yaml.safe_load(out)["evaluate"] | {"input": "out", "reference": "refs", "output": "ev"} == yaml.safe_load(out)["evaluate"]
