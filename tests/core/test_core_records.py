"""Reading user files: formats, tag cells, and file:line errors (with property-based tests)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtune.errors import InputError
from tagtune.files.readers import columns, iter_records, parse_tags, resolve_path
from tagtune.records.reader import Columns, ReadStats, read_rows
from tagtune.records.rows import CaptionRow, TagSetRow
from tagtune.records.tagsets import TagDataset, load_tag_dataset, split_records
from tagtune.records.taxonomy import Taxonomy

TAX = Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "sad"]})


def read_tag_rows(rows, taxonomy, source, kind=TagSetRow, **columns) -> TagDataset:
    """Rows as the training stages read them: unknown tags dropped and counted, tagless rows dropped."""
    stats = ReadStats(source)
    unique = columns.pop("unique_ids", True)
    records = list(read_rows(rows, source, kind, taxonomy, Columns(**columns), unknown="drop", empty="drop",
                             unique_ids=unique, stats=stats))
    return TagDataset(records, taxonomy, stats)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("rock, jazz", ["rock", "jazz"]),
        ('["rock", "jazz"]', ["rock", "jazz"]),
        ("['rock', 'jazz']", ["rock", "jazz"]),
        (["rock", " jazz "], ["rock", "jazz"]),
        (None, []),
        (float("nan"), []),
        ("", []),
        ("rock,,", ["rock"]),
        ("rock; jazz", ["rock", "jazz"]),
        ("['female singer' 'opera singer']", ["female singer", "opera singer"]),  # numpy repr, as pandas writes arrays
        ('["a", "b"]', ["a", "b"]),
    ],
)
def test_parse_tags_accepts_every_layout(value, expected):
    assert parse_tags(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("pop, rock (live)", ["pop", "rock (live)"]),
    ("drums (acoustic)", ["drums (acoustic)"]),
    ("(live) rock; pop", ["(live) rock", "pop"]),
])
def test_a_separated_string_ending_in_a_parenthesis_is_not_a_list(value, expected):
    assert parse_tags(value) == expected


@pytest.mark.parametrize("value", ["[rock, 'jazz'", 3, [1, 2], {"a": 1}])
def test_parse_tags_rejects_garbage(value):
    with pytest.raises(ValueError):
        parse_tags(value)


@settings(max_examples=80, deadline=None)
# ";" separates tags too; "(" / ")" are left out here: a cell that is one parenthesised tag, "(live)",
# reads as a tuple literal (see test_a_separated_string_ending_in_a_parenthesis_is_not_a_list)
@given(tags=st.lists(st.text(alphabet=st.characters(blacklist_characters=",;[](){}\"'\\", blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=10).map(str.strip).filter(bool), max_size=8))
def test_property_every_encoding_of_a_list_parses_back(tags):
    assert parse_tags(tags) == tags
    assert parse_tags(json.dumps(tags)) == tags
    assert parse_tags(repr(tags)) == tags
    assert parse_tags(", ".join(tags)) == tags


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=40))
def test_property_parse_tags_never_crashes_with_anything_but_valueerror(text):
    try:
        out = parse_tags(text)
    except ValueError:
        return
    assert all(isinstance(t, str) and t == t.strip() and t for t in out)


def _write(tmp_path, name, content, mode="w"):
    path = tmp_path / name
    if mode == "wb":
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_all_formats_yield_the_same_records(tmp_path):
    rows = [{"id": "a", "tags": "rock, calm"}, {"id": "b", "tags": "jazz"}]
    jsonl = _write(tmp_path, "x.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    arr = _write(tmp_path, "x.json", json.dumps(rows))
    csv_path = tmp_path / "x.csv"
    pd.DataFrame(rows).to_csv(csv_path, index=False)
    pq = tmp_path / "x.parquet"
    pd.DataFrame(rows).to_parquet(pq)
    for path in (jsonl, arr, csv_path, pq):
        assert [r for _, r in iter_records(path)] == rows, path
    assert [ln for ln, _ in iter_records(csv_path)] == [2, 3]  # line numbers count the header
    assert columns(pq) == ["id", "tags"]
    txt = _write(tmp_path, "p.txt", "first prompt\n\nsecond\n")
    assert list(iter_records(txt)) == [(1, {"text": "first prompt"}), (3, {"text": "second"})]


@pytest.mark.parametrize(
    "name, content, pattern",
    [
        ("empty.jsonl", "", "file is empty"),
        ("bad.jsonl", '{"id": 1}\n{"id": \n', r"bad\.jsonl:2: invalid JSON"),
        ("list.jsonl", '{"id": 1}\n[1, 2]\n', r"list\.jsonl:2: expected a JSON object"),
        ("x.xlsx", "whatever", "unsupported file type '.xlsx'"),
        ("wide.csv", "a,b\n1,2,3\n", r"wide\.csv:2: row has more fields"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, content, pattern):
    path = _write(tmp_path, name, content)
    with pytest.raises(InputError, match=pattern):
        list(iter_records(path))


def test_non_utf8_and_missing_files(tmp_path):
    bad = _write(tmp_path, "latin.jsonl", b'{"t": "ok"}\n{"t": "caf\xe9"}\n', mode="wb")
    with pytest.raises(InputError, match=r"latin\.jsonl:2: not UTF-8"):
        list(iter_records(bad))
    bad_csv = _write(tmp_path, "latin.csv", b"t\nok\ncaf\xe9\n", mode="wb")
    with pytest.raises(InputError, match="not UTF-8"):
        list(iter_records(bad_csv))
    with pytest.raises(InputError, match="does not exist"):
        list(iter_records(tmp_path / "nope.jsonl"))
    with pytest.raises(InputError, match="is a directory"):
        list(iter_records(tmp_path))


def test_huge_line_is_refused_without_reading_it_whole(tmp_path, monkeypatch):
    import tagtune.files.resumable as res

    path = _write(tmp_path, "big.jsonl", '{"a": 1}\n' + '{"t": "' + "x" * 5000 + '"}\n')
    from tagtune.files.resumable import iter_jsonl

    with pytest.raises(InputError, match=r"big\.jsonl:2: line is longer"):
        list(iter_jsonl(path, max_line_bytes=1000))
    assert res.MAX_LINE_BYTES >= 1 << 20


def test_pkg_paths_point_inside_the_package():
    assert resolve_path("pkg:taxonomy.yaml").is_file()
    assert resolve_path("pkg:demo_tags.jsonl").is_file()


def test_tag_rows_count_unknown_tags_and_drop_empty_rows(tmp_path):
    rows = [(2, {"tags": "rock, funk, funk2"}), (3, {"tags": "funk"}), (4, {"tags": ["jazz", "Calm"]})]
    ds = read_tag_rows(rows, TAX, "f.csv", tags="tags")
    assert [r.tags for r in ds.records] == [["rock"], ["jazz", "calm"]]
    assert ds.stats.total == 3 and ds.stats.dropped == 1 and ds.stats.unknown_tags["funk"] == 2
    assert any("'funk' x2" in line for line in ds.report())


def test_rows_without_an_id_get_their_line_and_extra_columns_ride_along():
    rows = [(2, {"aspect_list": "rock", "source": "a"}), (3, {"aspect_list": ["jazz"], "source": "b", "id": "x"})]
    got = list(read_rows(rows, "f.csv", TagSetRow, TAX))
    assert [r.id for r in got] == ["row-000002", "x"]
    assert [r.tags for r in got] == [["rock"], ["jazz"]]  # `aspect_list` is read as the tags column
    assert got[0].extra == {"source": "a"}
    assert got[0].to_record(TAX) == {"id": "row-000002", "tags": ["rock"], "genre": ["rock"], "mood": [], "source": "a"}


def test_missing_column_lists_available_columns():
    with pytest.raises(InputError, match=r"f\.csv:2: field 'labels': no column 'labels'; available columns: tags, caption"):
        read_tag_rows([(2, {"tags": "rock", "caption": "x"})], TAX, "f.csv", tags="labels")
    # a usual name that is absent falls back to the other usual names
    ds = read_tag_rows([(2, {"tags": "rock", "caption": "x"})], TAX, "f.csv", tags="aspect_list")
    assert ds.records[0].tags == ["rock"]


def test_per_category_columns_and_auto_detection():
    rows = [(2, {"genre_tags": "rock", "mood_tags": "['sad']"})]
    auto = read_tag_rows(rows, TAX, "f.csv")
    assert auto.records[0].tags == ["rock", "sad"]
    explicit = read_tag_rows(rows, TAX, "f.csv", category_columns={"genre": "genre_tags"})
    assert explicit.records[0].extra == {"mood_tags": "['sad']"}
    assert explicit.records[0].tags == ["rock"]


def test_captions_required_and_duplicate_ids_refused():
    with pytest.raises(InputError, match=r"f\.csv:3: field 'caption': caption is empty"):
        read_tag_rows([(2, {"tags": "rock", "caption": "ok"}), (3, {"tags": "jazz", "caption": " "})], TAX, "f.csv",
                      CaptionRow, tags="tags", caption="caption")
    with pytest.raises(InputError, match="duplicate id 'a'"):
        read_tag_rows([(1, {"id": "a", "tags": "rock"}), (2, {"id": "a", "tags": "jazz"})], TAX, "f.jsonl")
    ok = read_tag_rows([(1, {"id": "a", "tags": "rock"}), (2, {"id": "a", "tags": "jazz"})], TAX, "f.jsonl", unique_ids=False)
    assert len(ok) == 2


def test_demo_dataset_loads_with_captions():
    ds = load_tag_dataset({"path": "pkg:demo_tags.jsonl", "taxonomy_path": "pkg:taxonomy.yaml", "tags_column": "tags", "caption_column": "caption"}, caption=True)
    assert len(ds) >= 300 and all(r.caption for r in ds.records) and ds.stats.dropped == 0


def test_hub_dataset_offline_is_one_clear_error():
    with pytest.raises(Exception) as info:
        load_tag_dataset({"dataset_name": "nobody/no-such-dataset", "taxonomy_path": "pkg:taxonomy.yaml"})
    assert "nobody/no-such-dataset" in str(info.value)
    assert "\n" not in str(info.value)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), val=st.floats(0, 0.45), test=st.floats(0, 0.45), seed=st.integers(0, 10))
def test_property_split_is_a_seeded_partition(n, val, test, seed):
    items = list(range(n))
    tr, va, te = split_records(items, val, test, seed)
    assert sorted(tr + va + te) == items
    assert (tr, va, te) == split_records(items, val, test, seed)
    if n:
        assert tr
