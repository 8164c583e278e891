"""Reading PROMPTS: JSONL / CSV / Parquet / TXT as caption rows, ids kept verbatim, file names, bad lines."""

from __future__ import annotations

import json

import pytest

from helpers import write_jsonl
from tagtune.errors import InputError
from tagtune.files.ids import safe_id
from tagtune.records.rows import CaptionRow
from tagtune.tta.config import PromptColumns
from tagtune.tta.prompts import clip_name, iter_prompts, scan_prompts


def data_cfg(**kw):
    base = {"caption_column": None, "id_column": "id", "duration_column": "duration"}
    return PromptColumns(**{**base, **kw})


def test_jsonl_caption_ids_duration_and_extra_fields(tmp_path):
    rows = [
        {"id": "s0-1", "caption": "rock song", "tags": ["rock"], "genre": ["rock"], "duration": 2.5},
        {"caption": "a jazz tune", "tags": []},  # no id: its line number
        {"id": 7, "caption": "x", "text": "not the caption: `caption` comes first", "tags": "jazz"},
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    got = list(iter_prompts(path, data_cfg()))
    assert all(isinstance(p, CaptionRow) for p in got)
    assert [p.id for p in got] == ["s0-1", "row-000002", "7"]
    assert [p.caption for p in got] == ["rock song", "a jazz tune", "x"]
    assert [p.tags for p in got] == [["rock"], [], ["jazz"]]
    assert got[0].duration == 2.5 and got[1].duration is None
    assert got[0].extra == {"genre": ["rock"]} and got[1].extra == {}
    assert got[2].extra == {"text": "not the caption: `caption` comes first"}
    assert [p.line for p in got] == [1, 2, 3]
    assert scan_prompts(path, data_cfg()).total == 3


def test_text_is_read_as_the_caption_when_there_is_no_caption_column(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": "calm piano"}, {"id": "b", "text": "loud drums"}])
    assert [(p.id, p.caption) for p in iter_prompts(path, data_cfg())] == [("a", "calm piano"), ("b", "loud drums")]


def test_csv_with_a_named_caption_column_and_parquet(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b"], "description": ["calm piano", "loud drums"], "duration": [1.0, None]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        got = list(iter_prompts(tmp_path / name, data_cfg(caption_column="description")))
        assert [(p.id, p.caption, p.duration) for p in got] == [("a", "calm piano", 1.0), ("b", "loud drums", None)], name
    with pytest.raises(InputError, match=r"p\.csv:2: no caption column \(tried caption, text, prediction\); available columns: id, description, duration"):
        list(iter_prompts(tmp_path / "p.csv", data_cfg()))
    with pytest.raises(InputError, match=r"p\.csv:2: no caption column 'prompt'"):
        list(iter_prompts(tmp_path / "p.csv", data_cfg(caption_column="prompt")))


def test_plain_text_one_prompt_per_line_ids_from_line_numbers(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("calm piano\n\n  loud drums  \ncalm piano\n", encoding="utf-8")
    got = list(iter_prompts(path, data_cfg()))
    assert [(p.caption, p.line, p.id) for p in got] == [
        ("calm piano", 1, "row-000001"), ("loud drums", 3, "row-000003"), ("calm piano", 4, "row-000004")]
    assert scan_prompts(path, data_cfg()).total == 3  # the same text twice is two prompts


def test_limit_takes_the_first_prompts(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    assert [p.caption for p in iter_prompts(path, data_cfg(), limit=2)] == ["a", "b"]
    assert scan_prompts(path, data_cfg(), limit=2).total == 2


@pytest.mark.parametrize("raw", ["../../x", "a/b c", "..", "con", "x" * 300, "曲-1", "take-1"])
def test_ids_are_kept_verbatim_and_file_names_are_safe(tmp_path, raw):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": raw, "caption": "t"}])
    (p,) = iter_prompts(path, data_cfg())
    assert p.id == raw
    name = clip_name(p.id, "wav")
    assert name == f"audio/{safe_id(raw)}.wav" and "/" not in name[len("audio/"):] and ".." not in name
    assert len(name.encode("utf-8")) <= len("audio/.wav") + 160
    if raw in ("曲-1", "take-1"):
        assert name == f"audio/{raw}.wav"  # a safe id is its own file name


def test_ids_that_differ_only_in_unsafe_characters_are_distinct_prompts(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a/b", "caption": "x"}, {"id": "a_b", "caption": "y"}, {"id": "a b", "caption": "z"}])
    got = list(iter_prompts(path, data_cfg()))
    assert scan_prompts(path, data_cfg()).ids == {"a/b", "a_b", "a b"}
    assert len({clip_name(p.id, "wav") for p in got}) == 3


def test_duplicate_ids_are_an_error(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "x"}, {"id": "a", "caption": "y"}])
    with pytest.raises(InputError, match=r"p\.jsonl:2: field 'id': duplicate id 'a' \(first on line 1\)"):
        scan_prompts(path, data_cfg())


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "a", "caption": ""}', "p.jsonl:2: field 'caption': caption is empty"),
    ('{"id": "a"}', "p.jsonl:2: field 'caption': caption is empty"),
    ('{"id": "a", "caption": 5}', "p.jsonl:2: field 'caption': expected text, got int"),
    ('{"id": "a", "caption": "x", "duration": "long"}', "p.jsonl:2: field 'duration': duration 'long' is not a number"),
    ('{"id": "a", "caption": "x", "duration": -1}', "p.jsonl:2: field 'duration': duration must be a positive"),
    ('{"id": ["a"], "caption": "x"}', "p.jsonl:2: field 'id': id must be a string or number, got list"),
    ('{"id": "a", "caption": "x"', "p.jsonl:2: invalid JSON"),
])
def test_bad_lines_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "ok", "caption": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        scan_prompts(path, data_cfg())
    assert message in str(info.value)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.jsonl: no rows"):
        scan_prompts(path, data_cfg())


def test_tags_are_optional_on_every_prompt_line(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "x"}, {"id": "b", "caption": "y", "tags": ["rock"]},
                                              {"id": "c", "caption": "z"}])
    assert [(p.id, p.tags, p.extra) for p in iter_prompts(path, data_cfg())] == [
        ("a", [], {}), ("b", ["rock"], {}), ("c", [], {})]
