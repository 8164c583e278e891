"""A truly full disk (a small tmpfs, where the machine lets us mount one): one line, exit 2, nothing torn.

The other full-disk tests patch the write calls; these let the real paths (soundfile's writer, the
JSONL appender) hit ENOSPC from the kernel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import soundfile as sf

from helpers import read_jsonl, run_cli, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path: Path):
    """A mounted tmpfs of the requested size (skipped where mounting is not allowed)."""
    mounted: list[Path] = []

    def make(kib: int) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root in a container that allows it)")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_audio_on_a_full_disk(small_disk, tmp_path):
    disk = small_disk(160)  # room for a few 1 s clips at 16 kHz (32 KB each) and the metadata
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"c{i:02d}", "caption": f"prompt {i}"} for i in range(12)])
    args = ["tta", "generate", str(prompts), "--preset", "quick_test", "generation.duration=1", "--batch-size", "1"]
    res = run_cli(*args, "-o", disk / "out")
    assert res.code == 2 and "no space left" in res.error(only=False).lower()
    meta = read_jsonl(disk / "out" / "metadata.jsonl", complete=True)  # every line whole
    assert 0 < len(meta) < 12
    for row in meta:  # every listed clip is complete
        assert sf.info(str(disk / "out" / row["file_name"])).frames == 16000
    assert _no_temp_files(disk / "out")
    copy = Path(shutil.copytree(disk / "out", tmp_path / "out"))  # more room: the same command finishes the job
    res = run_cli(*args, "-o", copy)
    assert res.code == 0, res.err
    rows = read_jsonl(copy / "metadata.jsonl", complete=True)
    assert sorted(r["id"] for r in rows) == [f"c{i:02d}" for i in range(12)]


def test_captions_on_a_full_disk(small_disk, tmp_path):
    disk = small_disk(12)  # a dozen caption lines or so (each carries its provenance)
    args = ["caption", "infer", "--preset", "quick_test", "--limit", "40", "--batch-size", "2"]
    res = run_cli(*args, "-o", disk / "caps.jsonl")
    assert res.code == 2 and "no space left" in res.error(only=False).lower()
    text = (disk / "caps.jsonl").read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")  # cut back to the last whole line
    done = [json.loads(line) for line in text.splitlines()]
    assert len(done) < 40
    out = tmp_path / "caps.jsonl"
    shutil.copy(disk / "caps.jsonl", out)
    res = run_cli(*args, "-o", out)
    assert res.code == 0, res.err
    ids = [r["id"] for r in read_jsonl(out, complete=True)]
    assert len(ids) == 40 == len(set(ids))
