"""`dataset export` checks what it publishes before it writes a file: unique ids, clips as long as their
rows say, one format per folder, sane shard sizes, something to export; a full disk is one line."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from helpers import run_cli, write_jsonl
from tagtune.pipeline.dataset import METADATA, build_dataset
from tagtune.records.taxonomy import Taxonomy

TAX = Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "sad"]})
TAGS = [["rock"], ["jazz"], ["calm"], ["sad"], ["rock", "sad"], ["jazz", "calm"]]


def _dataset(tmp_path: Path, n: int = 12) -> Path:
    src = tmp_path / "tta"
    (src / "audio").mkdir(parents=True)
    rows = []
    for i in range(n):
        sf.write(src / "audio" / f"c{i:02d}.wav", np.full(4000, 0.1, dtype="float32"), 8000, subtype="PCM_16")
        rows.append({"file_name": f"audio/c{i:02d}.wav", "id": f"c{i:02d}", "tags": TAGS[i % len(TAGS)],
                     "caption": f"caption {i}", "duration": 0.5, "sample_rate": 8000})
    write_jsonl(src / "metadata.jsonl", rows)
    cfg = {"splits": {"train": 0.5, "validation": 0.25, "test": 0.25}, "split_seed": 0, "name": "t", "license": "cc-by-4.0",
           "attribution": "", "input_licenses": {}, "exclude": [], "exclude_ngram": 4, "exclude_threshold": 0.5}
    build_dataset(src, tmp_path / "run" / "dataset", TAX, cfg, {"inputs": {"audio_model": "tiny"}})
    return tmp_path / "run"


def _first(ds: Path, split: str) -> tuple[Path, dict]:
    return ds / split / METADATA, pq.read_table(ds / split / METADATA).to_pylist()[0]


def test_a_row_copied_into_another_split_is_refused_before_anything_is_written(tmp_path):
    run = _dataset(tmp_path)
    ds = run / "dataset"
    train, test = pq.read_table(ds / "train" / METADATA), pq.read_table(ds / "test" / METADATA)
    copied = test.to_pylist() + [train.to_pylist()[0]]
    shutil.copy(ds / "train" / train.to_pylist()[0]["file_name"], ds / "test" / train.to_pylist()[0]["file_name"])
    pq.write_table(type(test).from_pylist(copied, schema=test.schema), ds / "test" / METADATA)
    res = run_cli("dataset", "export", run, "-o", tmp_path / "E")
    assert res.code == 2 and f"id '{train.to_pylist()[0]['id']}' is in both train and test" in res.error()
    assert not (tmp_path / "E").exists()


def test_a_clip_shorter_than_its_row_is_refused_naming_file_line_and_field(tmp_path):
    run = _dataset(tmp_path)
    meta, row = _first(run / "dataset", "validation")
    clip = meta.parent / row["file_name"]
    clip.unlink()  # the build hard-links: replace the file, not the shared inode
    sf.write(clip, np.zeros(400, dtype="float32"), 8000)  # 0.05 s where the row says 0.5 s
    res = run_cli("dataset", "export", run, "--format", "webdataset", "-o", tmp_path / "E")
    assert res.code == 2
    assert f"{meta}:1: field 'duration'" in res.error() and "holds 0.050 s but its row says 0.500 s" in res.error()
    assert not (tmp_path / "E").exists()


def test_an_unreadable_clip_is_one_line(tmp_path):
    run = _dataset(tmp_path)
    meta, row = _first(run / "dataset", "train")
    clip = meta.parent / row["file_name"]
    clip.unlink()
    clip.write_bytes(b"not audio at all")
    res = run_cli("dataset", "export", run, "-o", tmp_path / "E")
    assert res.code == 2 and "is not readable audio" in res.error() and "field 'file_name'" in res.error()


def test_a_second_format_into_the_same_folder_is_refused(tmp_path):
    run = _dataset(tmp_path)
    assert run_cli("dataset", "export", run, "--format", "parquet", "-o", tmp_path / "E").code == 0
    before = sorted(p.name for p in (tmp_path / "E").rglob("*"))
    res = run_cli("dataset", "export", run, "--format", "webdataset", "-o", tmp_path / "E")
    assert res.code == 2 and "holds a parquet export: a webdataset export would mix formats" in res.error()
    assert sorted(p.name for p in (tmp_path / "E").rglob("*")) == before
    assert run_cli("dataset", "export", run, "--format", "parquet", "-o", tmp_path / "E").code == 0  # same format: updated


@pytest.mark.parametrize("mb", ["0", "-3"])
def test_a_shard_size_below_one_megabyte_is_refused(tmp_path, mb):
    run = _dataset(tmp_path)
    res = run_cli("dataset", "export", run, "--shard-mb", mb, "-o", tmp_path / "E")
    assert res.code == 2 and "--shard-mb must be at least 1" in res.error()


def test_an_export_with_no_rows_left_is_one_line_and_writes_nothing(tmp_path):
    run = _dataset(tmp_path)
    held = write_jsonl(tmp_path / "held.jsonl", [{"tags": t} for t in TAGS])  # every tag set is held out
    res = run_cli("dataset", "export", run, "--format", "parquet", "--exclude", held, "-o", tmp_path / "E")
    assert res.code == 2 and "no rows to export: the leakage guard left out all 12 rows" in res.error()
    assert not list((tmp_path / "E").rglob("*.parquet"))


@pytest.mark.parametrize("fmt", ["parquet", "webdataset"])
def test_a_full_disk_during_export_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch, fmt):
    """ENOSPC from the writer (pyarrow's or tarfile's) is the one-line OutputError; the half-written
    shard is removed."""
    import builtins

    run = _dataset(tmp_path)
    out = tmp_path / "E"
    real_open = builtins.open
    written = {"n": 0}

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            written["n"] += len(data)
            if written["n"] > 2000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.fh.write(data)

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.fh.__exit__(*exc)

    def full_open(file, mode="r", *a, **kw):
        fh = real_open(file, mode, *a, **kw)
        return Full(fh) if "w" in mode and str(file).endswith(".tmp") else fh

    if fmt == "parquet":
        monkeypatch.setattr("pyarrow.parquet.core.ParquetWriter.__init__", _raising_init)
    else:
        import tarfile

        monkeypatch.setattr(tarfile, "bltn_open", full_open)  # the open() tarfile writes shards with
    res = run_cli("dataset", "export", run, "--format", fmt, "-o", out)
    assert res.code == 2 and "no space left on device" in res.error().lower()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def _raising_init(self, where, *args, **kwargs):
    Path(where).write_bytes(b"PAR1")  # the file exists, half-written, when the disk fills
    raise OSError(errno.ENOSPC, "No space left on device")
