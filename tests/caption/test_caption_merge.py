"""``caption merge``: shard parts combined into the unsharded run's output, with tta merge's checks."""

from __future__ import annotations

import json

import pytest

from helpers import read_jsonl, run_cli
from tagtune.caption.config import INFER
from tagtune.caption.merge import merge_dir
from tagtune.errors import InputError, OutputError

N = 18


def part(folder, i, n=3):
    return folder / f"caps.shard-{i:05d}-of-{n:05d}.jsonl"


@pytest.fixture
def runs(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    """``runs(*overrides, shards=(0, 1, 2))``: shard runs of the tiny model into ``parts/caps.jsonl``.

    Returns the parts folder; ``tmp_path / "whole.jsonl"`` holds the unsharded run (same seed).
    """
    src = tags_jsonl(N)
    infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={tmp_path / 'whole.jsonl'}"))

    def shard(*overrides: str, shards: tuple[int, ...] = (0, 1, 2)):
        for i in shards:
            infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={tmp_path / 'parts' / 'caps.jsonl'}",
                                   f"infer.shard={i}/3", *overrides))
        return tmp_path / "parts"

    return shard


def test_merged_parts_equal_the_unsharded_run_byte_for_byte(runs, tmp_path):
    folder = runs()
    assert all(part(folder, i).is_file() for i in range(3))
    code, out, err = run_cli("caption", "merge", folder)
    assert code == 0, err
    assert f"merged 3 part(s) into {folder / 'caps.jsonl'}: {N} caption(s)" in " ".join(out.split())
    assert (folder / "caps.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["caps.jsonl", "caps.jsonl.config.yaml"]  # parts and their configs gone
    assert "infer:\n  input:" in (folder / "caps.jsonl.config.yaml").read_text() and "shard: null" in (folder / "caps.jsonl.config.yaml").read_text()
    code, out, _ = run_cli("caption", "merge", folder)  # again: nothing left to merge
    assert code == 0 and "nothing to merge" in out


def test_an_unsharded_run_folds_the_parts_in_first(runs, caption_cfg, infer_tiny, tmp_path):
    folder = runs()
    res = infer_tiny(caption_cfg(INFER, f"infer.input={tmp_path / 'tags.jsonl'}", f"infer.output={folder / 'caps.jsonl'}"))
    assert res.merged is not None and res.merged.merged and res.written == 0 and res.already_done == N
    assert (folder / "caps.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert not list(folder.glob("caps.shard-*"))


def test_a_missing_part_is_reported_and_merged_later(runs, tmp_path):
    folder = runs(shards=(0, 2))
    (report,) = merge_dir(folder)
    assert report.merged and report.missing == ["shard-00001-of-00003"]
    assert report.lines == len(read_jsonl(folder / "caps.jsonl")) < N
    done = {r["id"] for r in read_jsonl(folder / "caps.jsonl")}
    runs(shards=(0, 1, 2))  # the array runs again: only the missing shard's tag sets are captioned
    assert not ({r["id"] for p in folder.glob("caps.shard-*.jsonl") for r in read_jsonl(p)} & done)
    (report,) = merge_dir(folder)
    assert report.merged and report.lines == N and report.order == "input"
    assert (folder / "caps.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_a_torn_last_line_is_cut(runs):
    folder = runs()
    torn = part(folder, 1)
    whole = torn.read_text(encoding="utf-8")
    torn.write_text(whole[: len(whole) - 40], encoding="utf-8")  # the shard was killed mid-append
    (report,) = merge_dir(folder)
    assert report.lines == N - 1
    assert len(read_jsonl(folder / "caps.jsonl", complete=True)) == N - 1


def test_conflicting_duplicate_ids_are_refused_and_nothing_changes(runs):
    folder = runs()
    a = part(folder, 0)
    stolen = read_jsonl(a)[0]
    with open(part(folder, 1), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(stolen, caption="another caption")) + "\n")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    res = run_cli("caption", "merge", folder)
    res.error(f"duplicate id '{stolen['id']}': also in {a.name}:1 with different content")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with open(a, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(stolen) + "\n")
    with pytest.raises(InputError, match=f"field 'id': duplicate id '{stolen['id']}' within the file"):
        merge_dir(folder)


def test_parts_written_with_other_sampling_settings_are_refused(runs):
    folder = runs(shards=(0, 1))
    runs("generation.temperature=0.9", shards=(2,))
    with pytest.raises(InputError, match=r"mixed settings: provenance\.caption\.generation\.temperature is 0\.9 here but 0\.7"):
        merge_dir(folder)
    assert len(list(folder.glob("caps.shard-*.jsonl"))) == 3 and not (folder / "caps.jsonl").exists()


def test_parts_written_with_another_seed_are_refused(runs):
    folder = runs(shards=(0, 1))
    runs("seed=7", shards=(2,))  # the rows' settings match; their recorded configs do not
    res = run_cli("caption", "merge", folder)
    res.error("mixed settings: caps.shard-00002-of-00003.jsonl was written with seed=7, caps.shard-00000-of-00003.jsonl with seed=42")
    assert not (folder / "caps.jsonl").exists()


def test_a_part_still_being_written_is_refused(runs):
    from tagtune.files.resumable import JsonlAppender

    folder = runs()
    with JsonlAppender(part(folder, 2)):
        with pytest.raises(OutputError, match="in use by another tagtune process .*wait for every shard to finish"):
            merge_dir(folder)


def test_without_a_readable_input_the_parts_order_is_kept(runs, tmp_path):
    folder = runs()
    (tmp_path / "tags.jsonl").unlink()
    (report,) = merge_dir(folder)
    assert report.merged and report.lines == N and report.order.startswith("cannot read the input")
    assert sorted(r["id"] for r in read_jsonl(folder / "caps.jsonl")) == sorted(r["id"] for r in read_jsonl(tmp_path / "whole.jsonl"))


def test_merge_needs_a_folder_and_says_how(tmp_path):
    run_cli("caption", "merge").error("no DIR given", "tagtune caption merge DIR")
    run_cli("caption", "merge", tmp_path / "nope").error("not a directory")
    code, out, _ = run_cli("caption", "merge", tmp_path)
    assert code == 0 and "nothing to merge" in out
    code, out, _ = run_cli("caption", "merge", "--help")
    assert code == 0 and "Examples" in out and "tagtune caption merge" in out
