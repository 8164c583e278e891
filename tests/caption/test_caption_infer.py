"""``caption infer`` as a function: outputs, resume, shards, seeding, bad input (tiny model, in process)."""

from __future__ import annotations

import json

import pytest

from helpers import read_jsonl
from tagtune.caption.config import INFER
from tagtune.caption.infer import output_path
from tagtune.config.typed import replace
from tagtune.errors import ConfigError, InputError
from tagtune.files.sharding import Shard
from tagtune.models.sampling import row_seed


def test_demo_input_when_none_given(caption_cfg, infer_tiny, tmp_path):
    cfg = caption_cfg(INFER, "infer.limit=10")
    res = infer_tiny(cfg)
    out = tmp_path / "run" / "captions.jsonl"
    assert res.output == str(out) and res.written == 10
    assert (tmp_path / "run" / "config.yaml").is_file()
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [f"demo-{i:04d}" for i in range(10)]
    assert all(r["caption"].strip() for r in rows)
    assert all(r["reference_caption"] for r in rows)  # the demo's own caption is kept aside


def test_vae_sample_jsonl_one_caption_per_id_fields_kept(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src = tags_jsonl(11)
    inputs = read_jsonl(src)
    out = tmp_path / "caps.jsonl"
    cfg = caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}", "generation.batch_size=4")
    res = infer_tiny(cfg)
    assert (res.written, res.already_done, res.empty) == (11, 0, 0)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [r["id"] for r in inputs]
    cats = ["genre", "mood", "instrument", "tempo"]
    for before, after in zip(inputs, rows, strict=True):
        # every input field, same order, the caption before the provenance (which gains its `caption` part)
        assert list(after) == ["id", "tags", *cats, "caption", "provenance"] == [k for k in before if k != "provenance"][:6] + ["caption", "provenance"]
        assert {k: after[k] for k in before if k != "provenance"} == {k: v for k, v in before.items() if k != "provenance"}
        assert after["provenance"]["tags"] == before["provenance"]["tags"]
        assert after["provenance"]["caption"]["model"] == "tiny" and after["provenance"]["caption"]["seed"] == row_seed(cfg.seed, after["id"])
        assert isinstance(after["caption"], str) and after["caption"].strip()
    assert (tmp_path / "caps.jsonl.config.yaml").is_file()


def test_rerun_skips_done_ids_and_overwrite_starts_over(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src, out = tags_jsonl(6), tmp_path / "caps.jsonl"
    cfg = caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}")
    infer_tiny(cfg)
    first = out.read_bytes()
    again = infer_tiny(cfg)
    assert (again.written, again.already_done) == (0, 6)
    assert out.read_bytes() == first
    fresh = infer_tiny(replace(cfg, {"infer.overwrite": True}))
    assert fresh.written == 6 and len(read_jsonl(out)) == 6


def test_resume_after_a_torn_last_line(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src, out = tags_jsonl(9), tmp_path / "caps.jsonl"
    cfg = caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}", "generation.batch_size=2")
    infer_tiny(cfg)
    complete = read_jsonl(out)
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2], encoding="utf-8")  # killed mid-write
    res = infer_tiny(cfg)
    assert (res.already_done, res.written) == (4, 5)
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in complete)
    # per-row seeding: the resumed captions equal the uninterrupted run's
    assert {r["id"]: r["caption"] for r in rows} == {r["id"]: r["caption"] for r in complete}


def test_captions_do_not_depend_on_batch_size(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src = tags_jsonl(7)
    caps = []
    for bs in (1, 3, 7):
        out = tmp_path / f"bs{bs}.jsonl"
        infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}", f"generation.batch_size={bs}"))
        caps.append({r["id"]: r["caption"] for r in read_jsonl(out)})
    assert caps[0] == caps[1] == caps[2]
    other_seed = tmp_path / "seed7.jsonl"
    infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={other_seed}", "seed=7"))
    assert {r["id"]: r["caption"] for r in read_jsonl(other_seed)} != caps[0]
    assert row_seed(1, "a") == row_seed(1, "a") != row_seed(2, "a")


def test_greedy_decoding_is_deterministic(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src = tags_jsonl(4)
    runs = []
    for i, seed in enumerate((1, 2)):
        out = tmp_path / f"g{i}.jsonl"
        infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}",
                          "generation.do_sample=false", f"seed={seed}"))
        runs.append([r["caption"] for r in read_jsonl(out)])
    assert runs[0] == runs[1] and all(runs[0])


def test_two_shards_cover_every_id_once(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src, out = tags_jsonl(20), tmp_path / "caps.jsonl"
    ids: list[str] = []
    for i in range(2):
        cfg = caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}", f"infer.shard={i}/2")
        res = infer_tiny(cfg)
        part = tmp_path / f"caps.shard-{i:05d}-of-00002.jsonl"
        assert res.output == str(part)
        got = [r["id"] for r in read_jsonl(part)]
        assert got and all(Shard(i, 2).owns(x) for x in got)
        ids += got
    assert sorted(ids) == sorted(r["id"] for r in read_jsonl(src))
    assert not out.exists()


def test_csv_input_with_aspect_list_and_no_ids(caption_cfg, infer_tiny, tmp_path):
    src = tmp_path / "tags.csv"
    src.write_text('aspect_list,caption\n"rock, energetic",orig one\n"[\'jazz\', \'calm\']",orig two\n', encoding="utf-8")
    out = tmp_path / "caps.jsonl"
    infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}"))
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["row-000002", "row-000003"]
    assert rows[1]["tags"] == ["jazz", "calm"] and "aspect_list" not in rows[1]  # our name for the tags column
    assert rows[1]["mood"] == ["calm"] and rows[1]["reference_caption"] == "orig two"


def test_user_columns_ride_along_after_our_fields(caption_cfg, infer_tiny, tmp_path):
    src = tmp_path / "tags.jsonl"
    src.write_text(json.dumps({"note": "mine", "tags": ["rock"], "id": "a", "score": 3}) + "\n", encoding="utf-8")
    out = tmp_path / "caps.jsonl"
    infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}"))
    (row,) = read_jsonl(out)
    assert list(row) == ["id", "tags", "genre", "mood", "instrument", "tempo", "caption", "provenance", "note", "score"]
    assert (row["note"], row["score"]) == ("mine", 3)


def test_reference_caption_comes_right_after_the_caption(caption_cfg, infer_tiny, tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text(json.dumps({"id": "a", "tags": ["rock"], "caption": "an old caption", "note": 1}) + "\n", encoding="utf-8")
    out = tmp_path / "caps.jsonl"
    infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}"))
    (row,) = read_jsonl(out)
    assert row["reference_caption"] == "an old caption"
    assert list(row) == ["id", "tags", "genre", "mood", "instrument", "tempo", "caption", "reference_caption", "provenance", "note"]


def test_named_tags_column_must_exist(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src = tags_jsonl(2)
    cfg = caption_cfg(INFER, f"infer.input={src}", f"infer.output={tmp_path / 'c.jsonl'}", "data.tags_column=labels")
    with pytest.raises(InputError, match=r"tags.jsonl:1: field 'labels': no column 'labels'; available columns: id, tags"):
        infer_tiny(cfg)


def test_output_path_default_and_shard_names(caption_cfg, tmp_path):
    cfg = caption_cfg()
    assert output_path(cfg, Shard()) == (tmp_path / "run" / "captions.jsonl", False)
    cfg = replace(cfg, {"infer.output": str(tmp_path / "x" / "caps.jsonl")})
    assert output_path(cfg, Shard(3, 8))[0] == tmp_path / "x" / "caps.shard-00003-of-00008.jsonl"


@pytest.mark.parametrize(
    ("lines", "where", "what"),
    [
        (['{"id": "a", "tags": ["rock"]}', '{"id": "b", "tags": ["jazz"]', ], ":2", "invalid JSON"),
        (['{"id": "a", "tags": ["rock"]}', '{"id": "a", "tags": ["jazz"]}'], ":2", "duplicate id 'a'"),
        (['{"id": "a", "tags": ["rock"]}', '{"id": "b", "tags": 7}'], ":2", "field 'tags'"),
        (['{"id": "a", "tags": ["rock"]}', '{"id": "b", "tags": []}'], ":2", "no tags"),
        (['{"id": "a", "labels": ["rock"]}'], ":1", "available columns: id, labels"),
    ],
)
def test_bad_input_names_file_line_and_field(caption_cfg, infer_tiny, tmp_path, lines, where, what):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "caps.jsonl"
    with pytest.raises(InputError) as exc:
        infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}"))
    assert f"in.jsonl{where}" in str(exc.value) and what in str(exc.value)
    assert not out.exists()  # nothing written on bad input


def test_existing_output_is_left_intact_on_bad_input(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src, out = tags_jsonl(3), tmp_path / "caps.jsonl"
    infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}"))
    before = out.read_bytes()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(src.read_text() + '{"id": "x", "tags": "rock"\n')
    with pytest.raises(InputError):
        infer_tiny(caption_cfg(INFER, f"infer.input={bad}", f"infer.output={out}"))
    assert out.read_bytes() == before
    assert json.loads(before.splitlines()[0])["caption"]


def test_output_equal_to_the_input_or_a_directory_is_refused(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src = tags_jsonl(3)
    before = src.read_bytes()
    with pytest.raises(ConfigError, match="is the input file") as info:
        infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={src}"))
    assert info.value.key == "infer.output" and src.read_bytes() == before
    with pytest.raises(ConfigError, match="is a directory") as info:
        infer_tiny(caption_cfg(INFER, f"infer.input={src}", f"infer.output={tmp_path}"))
    assert info.value.key == "infer.output"


def test_lines_without_a_caption_are_not_done_and_are_captioned_again(caption_cfg, infer_tiny, tags_jsonl, tmp_path):
    src, out = tags_jsonl(4), tmp_path / "caps.jsonl"
    cfg = caption_cfg(INFER, f"infer.input={src}", f"infer.output={out}")
    infer_tiny(cfg)
    rows = read_jsonl(out)
    rows[1]["caption"] = "  "
    del rows[2]["caption"]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    res = infer_tiny(cfg)
    assert (res.already_done, res.written) == (2, 2)
    again = read_jsonl(out)
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in rows) and all(r["caption"].strip() for r in again)
