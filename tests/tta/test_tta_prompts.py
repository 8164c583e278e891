"""Reading PROMPTS: JSONL / CSV / Parquet / TXT, id derivation and sanitising, collisions, bad lines."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from tagtune.errors import InputError
from tagtune.ids import text_id
from tagtune.tta.prompts import iter_prompts, scan_prompts


def data_cfg(**kw):
    base = {"path": None, "text_column": None, "id_column": "id", "duration_column": "duration", "limit": None}
    return OmegaConf.create({**base, **kw})


def test_jsonl_caption_text_ids_duration_and_extra_fields(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [
        {"id": "s0-1", "caption": "rock song", "tags": ["rock"], "genre": ["rock"], "duration": 2.5},
        {"text": "a jazz tune"},  # no id: derived from the text
        {"id": 7, "caption": "x", "text": "ignored: caption wins"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    got = list(iter_prompts(path, data_cfg()))
    assert [p.id for p in got] == ["s0-1", text_id("a jazz tune"), "7"]
    assert [p.text for p in got] == ["rock song", "a jazz tune", "x"]
    assert got[0].duration == 2.5 and got[1].duration is None
    assert got[0].extra == {"caption": "rock song", "tags": ["rock"], "genre": ["rock"]}
    assert "text" not in got[1].extra and got[1].id_from_text
    assert "text" not in got[2].extra  # the metadata `text` is the prompt actually rendered
    assert [p.line for p in got] == [1, 2, 3]
    assert scan_prompts(path, data_cfg()).total == 3


def test_text_derived_ids_are_stable():
    assert text_id("a jazz tune") == text_id("a jazz tune") != text_id("a jazz tune!")


def test_csv_with_text_column_and_parquet(tmp_path):
    import pandas as pd

    frame = pd.DataFrame({"id": ["a", "b"], "description": ["calm piano", "loud drums"], "duration": [1.0, None]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    for name in ("p.csv", "p.parquet"):
        got = list(iter_prompts(tmp_path / name, data_cfg(text_column="description")))
        assert [(p.id, p.text, p.duration) for p in got] == [("a", "calm piano", 1.0), ("b", "loud drums", None)], name
    with pytest.raises(InputError, match=r"p\.csv:2: field 'caption'"):
        list(iter_prompts(tmp_path / "p.csv", data_cfg()))


def test_plain_text_one_prompt_per_line(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("calm piano\n\n  loud drums  \n", encoding="utf-8")
    got = list(iter_prompts(path, data_cfg()))
    assert [(p.text, p.line, p.id) for p in got] == [("calm piano", 1, text_id("calm piano")), ("loud drums", 3, text_id("loud drums"))]


def test_limit_takes_the_first_prompts(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a\nb\nc\n", encoding="utf-8")
    assert [p.text for p in iter_prompts(path, data_cfg(limit=2))] == ["a", "b"]
    assert scan_prompts(path, data_cfg(limit=2)).total == 2


@pytest.mark.parametrize(("raw", "expected"), [("../../x", "x"), ("a/b c", "a_b_c"), ("..", None), ("con", "_con"), ("x" * 300, None)])
def test_ids_are_sanitised_for_file_names(tmp_path, raw, expected):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": raw, "caption": "t"}) + "\n", encoding="utf-8")
    (p,) = iter_prompts(path, data_cfg())
    assert "/" not in p.id and ".." not in p.id and 0 < len(p.id) <= 120
    if expected:
        assert p.id == expected
    assert p.source_id == raw


def test_collision_after_sanitising_is_an_error(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a/b", "caption": "x"}) + "\n" + json.dumps({"id": "a_b", "caption": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"p\.jsonl:2: field 'id': id 'a_b' becomes 'a_b' as a file name, like id 'a/b' on line 1"):
        scan_prompts(path, data_cfg())


def test_duplicate_ids_and_duplicate_texts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"id": "a", "caption": "x"}) + "\n" + json.dumps({"id": "a", "caption": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="p.jsonl:2: .*duplicate id 'a' \\(first on line 1\\)"):
        scan_prompts(path, data_cfg())
    txt = tmp_path / "p.txt"
    txt.write_text("same\nother\nsame\n", encoding="utf-8")
    with pytest.raises(InputError, match="p.txt:3: .*same text as line 1"):
        scan_prompts(txt, data_cfg())


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "a", "caption": ""}', "p.jsonl:2: field 'caption': empty prompt text"),
    ('{"id": "a"}', "p.jsonl:2: field 'caption': no prompt text"),
    ('{"id": "a", "caption": 5}', "p.jsonl:2: field 'caption': prompt text is a int"),
    ('{"id": "a", "caption": "x", "duration": "long"}', "p.jsonl:2: field 'duration': duration 'long' is not a number"),
    ('{"id": "a", "caption": "x", "duration": -1}', "p.jsonl:2: field 'duration': duration must be a positive"),
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
    with pytest.raises(InputError, match="no prompts"):
        scan_prompts(path, data_cfg())
