"""Running `tagtune pipeline run` under the executors and comparing what it made (the tests of
tests/pipeline/test_pipeline_executors.py): datasets and captions minus timing fields, the stand-in
SLURM's sbatch records, `pipeline status --json`, and killing a shard's worker mid-task."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd

from helpers.cli import run_cli
from helpers.jsonl import read_jsonl
from helpers.slurm_standin import submissions

MARKERS = ".tagtune-shards"
VOLATILE = {"seconds", "host", "hostname", "pid", "started_at", "finished_at", "written_at", "created_at", "timestamp"}


def _comparable(value: Any) -> Any:
    """A metadata value without timing or host fields (which may differ between executors)."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    if hasattr(value, "tolist"):
        return _comparable(value.tolist())
    return value


def dataset(run: Path) -> dict[str, tuple[str, str, Any]]:
    """id -> (split, sha256 of its WAV, its row) for the dataset folder of a run."""
    out = {}
    for split in ("train", "validation", "test"):
        folder = run / "dataset" / split
        if (folder / "metadata.parquet").is_file():
            for row in pd.read_parquet(folder / "metadata.parquet").to_dict("records"):
                wav = hashlib.sha256((folder / row["file_name"]).read_bytes()).hexdigest()
                out[row["id"]] = (split, wav, _comparable(row))
    return out


def assert_same_dataset(run: Path, reference: Path, items: int = 6) -> None:
    """The same ids per split, byte-identical WAVs and the same rows (timing fields aside)."""
    mine, theirs = dataset(run), dataset(reference)
    assert len(theirs) == items
    for split in ("train", "validation", "test"):
        assert sorted(i for i, v in mine.items() if v[0] == split) == sorted(i for i, v in theirs.items() if v[0] == split)
    for item, (_, wav, row) in theirs.items():
        assert mine[item][1] == wav, f"{item}: the WAV differs"
        assert mine[item][2] == row, f"{item}: the metadata row differs"
        assert row["caption"].strip() and list(row["tags"])


def captions(run: Path) -> dict[str, Any]:
    rows = read_jsonl(run / "caption" / "captions.jsonl", complete=True)
    assert len({r["id"] for r in rows}) == len(rows), "a caption line was written twice"
    return {r["id"]: _comparable(r) for r in rows}


def arrays(state: Path, name: str) -> list[str]:
    """The --array spec of every sbatch of one job name (tagtune-<stage>-<step>), in order."""
    return [s["array"] for s in submissions(state) if s["name"] == f"tagtune-{name}"]


def status_json(out: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    code, text, err = run_cli("pipeline", "status", "-o", out, "--json", env=env)
    assert code == 0, err
    return {s["stage"]: s for s in json.loads(text)["stages"]}


def step_of(status: dict[str, Any], stage: str, step: str) -> dict[str, Any]:
    return next(s for s in status[stage]["steps"] if s["step"] == step)


def kill_worker_when(argv: list[str], env: dict[str, str], running: Path, ready: Callable[[], bool], log: Path,
                     timeout: float = 300) -> tuple[int, bool]:
    """Run ``argv``; once ``ready()`` holds, SIGKILL the worker process that the shard's ``running``
    marker names (the task, not the driver), once. Returns the exit status and whether it killed."""
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)
    killed, deadline = False, time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if not killed and ready():
                try:
                    os.kill(json.loads(running.read_text())["pid"], signal.SIGKILL)
                    killed = True
                except (OSError, ValueError, KeyError):
                    pass  # the marker is being written: try again
            time.sleep(0.005)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, killed


def shard_files(stage: Path, step: str, index: int, count: int) -> SimpleNamespace:
    """The running and done markers of one shard of a step."""
    name = f"{index:05d}-of-{count:05d}.json"
    return SimpleNamespace(running=stage / MARKERS / step / "running" / name, done=stage / MARKERS / step / "done" / name)


def recorded(folder: Path) -> bool:
    """Whether a step's submission record is there (complete: atomic writes show a temporary name first)."""
    return folder.is_dir() and any(p.suffix == ".json" and not p.name.startswith(".") for p in folder.iterdir())
