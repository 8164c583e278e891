"""Merging shard parts: duplicates, missing files, orphans, newer part lines, torn lines, locks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import read_jsonl
from tagtune.errors import InputError, OutputError
from tagtune.tta.audio import write_clip
from tagtune.tta.merge import merge_dir


def clip(folder, ident):
    write_clip(folder / "audio" / f"{ident}.wav", np.full((1, 160), 0.1, np.float32), 16000, "wav", "PCM_16")


def line(ident, seed=1):
    return json.dumps({"file_name": f"audio/{ident}.wav", "id": ident, "caption": f"prompt {ident}",
                       "provenance": {"audio": {"seed": seed}}}) + "\n"


@pytest.fixture
def run_dir(tmp_path):
    for ident in "abc":
        clip(tmp_path, ident)
    (tmp_path / "metadata.shard-00000-of-00002.jsonl").write_text(line("a") + line("b"), encoding="utf-8")
    (tmp_path / "metadata.shard-00001-of-00002.jsonl").write_text(line("c"), encoding="utf-8")
    return tmp_path


def ids(path):
    return [r["id"] for r in read_jsonl(path, complete=True)]


def test_clean_merge(run_dir):
    report = merge_dir(run_dir)
    assert report.merged and report.lines == 3 and not report.orphans
    assert ids(run_dir / "metadata.jsonl") == ["a", "b", "c"]
    assert not list(run_dir.glob("metadata.shard-*"))
    again = merge_dir(run_dir)  # idempotent: nothing left to merge
    assert not again.merged and again.lines == 3


def test_conflicting_duplicates_across_parts_fail_and_change_nothing(run_dir):
    part = run_dir / "metadata.shard-00001-of-00002.jsonl"
    part.write_text(line("c") + line("a", seed=2), encoding="utf-8")
    with pytest.raises(InputError, match="duplicate id 'a': also in metadata.shard-00000-of-00002.jsonl:1"):
        merge_dir(run_dir)
    assert not (run_dir / "metadata.jsonl").exists() and len(list(run_dir.glob("metadata.shard-*"))) == 2


def test_duplicate_within_a_file(run_dir):
    (run_dir / "metadata.shard-00001-of-00002.jsonl").write_text(line("c") + line("c"), encoding="utf-8")
    with pytest.raises(InputError, match="shard-00001-of-00002.jsonl:2: field 'id': duplicate id 'c' within the file"):
        merge_dir(run_dir)


def test_identical_duplicates_are_kept_once_and_parts_replace_merged_lines(run_dir):
    (run_dir / "metadata.shard-00001-of-00002.jsonl").write_text(line("c") + line("a"), encoding="utf-8")
    report = merge_dir(run_dir)
    assert report.deduplicated == 1 and ids(run_dir / "metadata.jsonl") == ["a", "b", "c"]
    # a shard rerun with --overwrite rewrote clip b with other settings: its part line is newer
    (run_dir / "metadata.shard-00000-of-00002.jsonl").write_text(line("b", seed=9), encoding="utf-8")
    report = merge_dir(run_dir)
    assert report.replaced == 1
    merged = read_jsonl(run_dir / "metadata.jsonl")
    assert [(r["id"], r["provenance"]["audio"]["seed"]) for r in merged] == [("a", 1), ("c", 1), ("b", 9)]


def test_missing_or_unreadable_audio_fails(run_dir):
    (run_dir / "audio" / "b.wav").unlink()
    (run_dir / "audio" / "c.wav").write_bytes(b"junk")
    with pytest.raises(InputError, match=r"2 metadata line\(s\) point at missing or unreadable audio: audio/b.wav"):
        merge_dir(run_dir)
    assert not (run_dir / "metadata.jsonl").exists()


def test_orphans_are_reported_and_torn_lines_cut(run_dir):
    clip(run_dir, "d")
    part = run_dir / "metadata.shard-00001-of-00002.jsonl"
    part.write_text(line("c") + line("d")[:15], encoding="utf-8")  # shard killed mid-append
    report = merge_dir(run_dir)
    assert report.lines == 3 and report.orphans == ["audio/d.wav"]


def test_file_name_outside_the_folder_is_refused(run_dir):
    (run_dir / "metadata.shard-00001-of-00002.jsonl").write_text(
        json.dumps({"file_name": "../x.wav", "id": "c"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="points outside"):
        merge_dir(run_dir)


def test_part_being_written_is_refused(run_dir):
    from tagtune.files.resumable import JsonlAppender

    with JsonlAppender(run_dir / "metadata.shard-00001-of-00002.jsonl"):
        with pytest.raises(OutputError, match="in use by another tagtune process .*wait for every shard to finish"):
            merge_dir(run_dir)


def test_nothing_to_merge(tmp_path):
    with pytest.raises(InputError, match="no metadata.jsonl"):
        merge_dir(tmp_path)
