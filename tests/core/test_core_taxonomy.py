"""Taxonomy loading, validation and the multi-hot codec (with property-based tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtune.errors import TaxonomyError
from tagtune.records.taxonomy import Taxonomy, normalize_tag


def test_packaged_default_taxonomy_has_the_four_categories():
    tax = Taxonomy.load("pkg:taxonomy.yaml")
    assert list(tax.categories) == ["genre", "mood", "instrument", "tempo"]
    assert len(tax) == sum(len(v) for v in tax.categories.values())


def test_order_is_file_order_and_tags_are_normalised():
    tax = Taxonomy({"Mood": ["  Happy ", "SAD"], "genre": ["Hip  Hop"]})
    assert tax.tags == ["happy", "sad", "hip hop"]
    assert list(tax.categories) == ["mood", "genre"]
    assert "HIP HOP" in tax and "hip-hop" not in tax


@pytest.mark.parametrize(
    "mapping, pattern",
    [
        ({"genre": ["rock", "Rock"]}, "'rock' appears twice"),
        ({"genre": ["rock"], "mood": ["rock"]}, "in both 'genre' and 'mood'"),
        ({"genre": []}, "category is empty"),
        ({"genre": ["rock", 3]}, "tag 3 is not a string"),
        ({"genre": "rock"}, "expected a list of tags"),
        ({"id": ["x"]}, "reserved"),
        ({}, "non-empty mapping"),
        ({"genre": ["a, b"]}, "comma"),
    ],
)
def test_invalid_taxonomies_name_the_problem(mapping, pattern):
    with pytest.raises(TaxonomyError, match=pattern):
        Taxonomy(mapping, source="t.json")


def test_load_json_and_yaml_and_report_syntax_errors(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps({"genre": ["rock"], "mood": ["calm"]}))
    (tmp_path / "t.yaml").write_text("genre: [rock]\nmood: [calm]\n")
    assert Taxonomy.load(tmp_path / "t.json") == Taxonomy.load(tmp_path / "t.yaml")
    (tmp_path / "bad.json").write_text('{"genre": ["rock",}')
    with pytest.raises(TaxonomyError, match=r"bad\.json:1: cannot parse"):
        Taxonomy.load(tmp_path / "bad.json")
    with pytest.raises(TaxonomyError, match="does not exist"):
        Taxonomy.load(tmp_path / "missing.json")


def test_duplicate_tag_error_names_file_and_category(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text(json.dumps({"genre": ["rock", "pop"], "mood": ["calm", "pop"]}))
    with pytest.raises(TaxonomyError) as info:
        Taxonomy.load(path)
    assert str(path) in str(info.value) and "'pop'" in str(info.value) and "mood" in str(info.value)


def test_encode_decode_by_category_and_fingerprint():
    tax = Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "sad"]})
    vec = tax.encode(["sad", "Rock", "unknown"])
    assert vec.tolist() == [1.0, 0.0, 0.0, 1.0]
    assert tax.decode(vec) == ["rock", "sad"]
    assert tax.decode(np.array([0.2, 0.6, 0.5, 0.1]), threshold=0.5) == ["jazz", "calm"]
    assert tax.by_category(["sad", "rock"]) == {"genre": ["rock"], "mood": ["sad"]}
    assert tax.known(["rock", "x", "ROCK", "y"]) == (["rock"], ["x", "y"])
    assert tax.fingerprint() == Taxonomy({"genre": ["rock", "jazz"], "mood": ["calm", "sad"]}).fingerprint()
    assert tax.fingerprint() != Taxonomy({"genre": ["jazz", "rock"], "mood": ["calm", "sad"]}).fingerprint()


def test_save_round_trips(tmp_path):
    tax = Taxonomy.load("pkg:taxonomy.yaml")
    assert Taxonomy.load(tax.save(tmp_path / "t.json")) == tax


tag_text = st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(lambda s: normalize_tag(s))


@st.composite
def taxonomies(draw):
    names = draw(st.lists(st.sampled_from(["genre", "mood", "instrument", "tempo", "era", "key"]), min_size=1, max_size=4, unique=True))
    tags = draw(st.lists(tag_text, min_size=len(names), max_size=30, unique_by=normalize_tag))
    cats = {n: [] for n in names}
    for i, t in enumerate(tags):
        cats[names[i % len(names)]].append(t)
    return Taxonomy(cats)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_decode_encode_is_identity_on_known_sets(data):
    tax = data.draw(taxonomies())
    subset = data.draw(st.lists(st.sampled_from(tax.tags), unique=True))
    vec = tax.encode(subset)
    assert vec.shape == (len(tax),) and set(np.unique(vec)) <= {0.0, 1.0}
    assert tax.decode(vec) == tax.sort(subset)
    assert sorted(t for ts in tax.by_category(subset).values() for t in ts) == sorted(set(subset))
    assert tax.encode(tax.decode(vec)).tolist() == vec.tolist()


@settings(max_examples=60, deadline=None)
@given(tags=st.lists(st.text(max_size=15), max_size=20))
def test_property_normalisation_is_idempotent_and_known_unknown_partition(tags):
    tax = Taxonomy({"genre": ["rock", "hip hop"], "mood": ["calm"]})
    known, unknown = tax.known(tags)
    assert set(known) <= set(tax.tags)
    assert not set(known) & set(unknown)
    assert all(normalize_tag(normalize_tag(t)) == normalize_tag(t) for t in tags)
