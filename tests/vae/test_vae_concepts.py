"""Concept coverage: taxonomy rules, balanced sampling, counterfactual pairs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from helpers import read_jsonl, run_cli, write_jsonl

TEMPOS = ("slow tempo", "medium tempo", "fast tempo", "very fast tempo")


# -- rules as data ------------------------------------------------------------------------------------

def test_rules_are_read_checked_and_applied():
    from tagtune.errors import TaxonomyError
    from tagtune.records.taxonomy import Taxonomy

    base = {"genre": ["rock", "jazz"], "tempo": ["slow tempo", "fast tempo"]}
    tax = Taxonomy({**base, "_rules": {"exclusive": [["slow tempo", "fast tempo"]], "counts": {"genre": {"min": 1, "max": 1}}}})
    assert tax.tags == ["rock", "jazz", "slow tempo", "fast tempo"]  # the rules are not a category
    assert tax.violations(["rock", "slow tempo"]) == []
    assert tax.violations(["rock", "jazz", "slow tempo", "fast tempo"]) == [
        "exclusive: slow tempo + fast tempo", "genre: 2 tags (allowed 1..1)"]
    assert list(tax.rule_mask(tax.encode_many([["rock"], ["slow tempo"], ["jazz", "fast tempo"]]))) == [True, False, True]
    assert tax == Taxonomy(base) and tax.fingerprint() == Taxonomy(base).fingerprint()  # same vector layout
    assert Taxonomy(tax.to_dict()).rules == tax.rules and not Taxonomy(base).rules
    for rules, field in (({"exclusive": [["slow tempo", "presto"]]}, "_rules.exclusive[0]"),
                         ({"counts": {"mood": {"max": 1}}}, "_rules.counts.mood"),
                         ({"counts": {"genre": {"min": 2, "max": 1}}}, "_rules.counts.genre"),
                         ({"exclusive": ["slow tempo"]}, "_rules.exclusive[0]"), ({"shape": 1}, "_rules")):
        with pytest.raises(TaxonomyError) as err:
            Taxonomy({**base, "_rules": rules}, source="tax.yaml")
        assert field in str(err.value)


def test_the_packaged_taxonomy_declares_exclusive_tempos():
    from tagtune.records.taxonomy import Taxonomy

    tax = Taxonomy.load("pkg:taxonomy.yaml")
    assert tuple(TEMPOS) in tax.rules.exclusive and "tempo" in tax.rules.counts


def test_default_samples_never_break_the_rules_and_evaluate_reports_breaches(demo_model, tmp_path):
    out = tmp_path / "s.jsonl"
    res = run_cli("vae", "sample", "--model", demo_model, "-n", "5000", "--seed", "3", "-o", out)
    assert res.code == 0, res.err
    rows = read_jsonl(out)
    assert len(rows) == 5000
    assert not [r for r in rows if sum(t in TEMPOS for t in r["tags"]) > 1]
    ev = run_cli("vae", "evaluate", out, "--reference", "pkg:demo_tags.jsonl", "--model", demo_model,
                 "-o", tmp_path / "m.json")
    assert ev.code == 0, ev.err
    assert json.loads((tmp_path / "m.json").read_text())["rule_violations"] == 0.0 and "rule_violations" in ev.out
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"tags": ["rock", "piano", "slow tempo", "fast tempo"]}] * 10
                      + [{"tags": ["rock", "piano", "slow tempo"]}] * 30)
    ev = run_cli("vae", "evaluate", bad, "--reference", "pkg:demo_tags.jsonl", "--model", demo_model,
                 "-o", tmp_path / "m2.json", "evaluate.k=2")
    assert ev.code == 0, ev.err
    metrics = json.loads((tmp_path / "m2.json").read_text())
    assert metrics["rule_violations"] == pytest.approx(0.25)
    assert metrics["rule_violations_detail"]["samples"]["by_rule"]["exclusive: " + " / ".join(TEMPOS)] == 10


def test_required_tags_that_break_a_rule_are_refused(demo_model):
    res = run_cli("vae", "sample", "--model", demo_model, "-n", "5", "--require", "slow tempo", "--require", "fast tempo")
    assert res.code == 2 and "exclude each other" in res.error()


# -- balanced sampling --------------------------------------------------------------------------------

def test_min_per_tag_reaches_every_tag_deterministically(demo_model, tmp_path):
    from tagtune.records.taxonomy import Taxonomy

    tax = Taxonomy.load(demo_model / "taxonomy.json")
    runs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        res = run_cli("vae", "sample", "--model", demo_model, "-n", "400", "--min-per-tag", "40", "--seed", "0", "-o", out)
        assert res.code == 0, res.err
        runs.append(out)
    assert runs[0].read_bytes() == runs[1].read_bytes()  # deterministic for a seed
    rows = read_jsonl(runs[0])
    counts = Counter(t for r in rows for t in r["tags"])
    report = json.loads(Path(str(runs[0]) + ".balance.json").read_text())
    assert min(counts[t] for t in tax.tags) >= 40 and report["counts"] == {t: counts[t] for t in tax.tags}
    # the model's own sets are removed to keep -n, unless removing one would take a tag below its quota
    assert len(rows) == 400 + report["extra"] and report["removed"] + report["extra"] == sum(report["topped_up"].values())
    assert all(not tax.violations(r["tags"]) for r in rows)
    assert report["topped_up"] and report["min_count"] >= 40 and report["draws"] > 0
    quota_rows = [r for r in rows if "quota" in r["provenance"]["tags"]]
    assert len(quota_rows) == sum(report["topped_up"].values())
    assert all(r["provenance"]["tags"]["quota"] in r["tags"] for r in quota_rows)  # drawn holding its tag
    assert f"quotas: {len(tax.tags)} tags" in " ".join(res.out.split())  # (rich wraps long lines when piped)


def test_category_quota_from_config(demo_model, tmp_path):
    out = tmp_path / "q.jsonl"
    res = run_cli("vae", "sample", "--model", demo_model, "-n", "200", "-o", out, "sample.quotas={tempo: 40}")
    assert res.code == 2 and "+sample.quotas.NAME=VALUE" in res.error()  # Hydra cannot add to an empty mapping so
    res = run_cli("vae", "sample", "--model", demo_model, "-n", "200", "-o", out, "+sample.quotas.tempo=40")
    assert res.code == 0, res.err
    counts = Counter(t for r in read_jsonl(out) for t in r["tags"])
    assert all(counts[t] >= 40 for t in (*TEMPOS, "steady beat", "syncopated rhythm"))


def test_an_impossible_quota_names_the_tag_and_writes_nothing(tmp_path):
    rows = [r for r in read_jsonl(_packaged("demo_tags.jsonl")) if "harmonica" not in r["tags"]]
    data = write_jsonl(tmp_path / "no_harmonica.jsonl", rows)
    model = tmp_path / "model"
    res = run_cli("vae", "train", "--preset", "quick_test", "-o", model, f"data.path={data}")
    assert res.code == 0, res.err
    out = tmp_path / "s.jsonl"
    res = run_cli("vae", "sample", "--model", model, "-n", "100", "--min-per-tag", "5", "-o", out)
    assert res.code == 2 and "'harmonica'" in res.error("never occurs in the model's training data")
    assert not out.exists() and not Path(str(out) + ".balance.json").exists()
    res = run_cli("vae", "sample", "--model", model, "-n", "100", "--min-per-tag", "5", "-o", out, "sample.skip_absent=true")
    assert res.code == 0, res.err
    assert "left out of the quotas" in res.err and "harmonica" in res.err
    report = json.loads(Path(str(out) + ".balance.json").read_text())
    assert report["skipped_absent"] == ["harmonica"] and "harmonica" not in report["topped_up"]
    assert min(c for t, c in report["counts"].items() if t != "harmonica") >= 5
    out.unlink()
    res = run_cli("vae", "sample", "--model", model, "-n", "100", "-o", out, "+sample.quotas.nosuchtag=3")
    assert res.code == 2 and "neither a tag nor a category" in res.error()


def _packaged(name: str) -> Path:
    from tagtune.files.readers import resolve_path

    return resolve_path(f"pkg:{name}")


# -- counterfactual pairs -----------------------------------------------------------------------------

def test_counterfactual_pairs_differ_in_exactly_one_tag_and_keep_the_rules(demo_model, tmp_path):
    from tagtune.records.taxonomy import Taxonomy

    tax = Taxonomy.load(demo_model / "taxonomy.json")
    out = tmp_path / "cf.jsonl"
    res = run_cli("vae", "sample", "--model", demo_model, "-n", "10", "--counterfactual", "24", "--seed", "5", "-o", out,
                  "--concept", "piano", "--concept", "fast tempo", "--concept", "jazz")
    assert res.code == 0, res.err
    rows = read_jsonl(out)
    assert len(rows) == 10 + 48 and "counterfactual pairs: 24" in res.out
    pairs: dict[str, list[dict]] = {}
    for r in rows[10:]:
        pairs.setdefault(r["pair_id"], []).append(r)
    assert len(pairs) == 24
    edits = Counter()
    for members in pairs.values():
        base, partner = members
        assert base["edit"] == "base" and partner["edit"] in ("add", "remove") and base["concept"] == partner["concept"]
        diff = set(base["tags"]) ^ set(partner["tags"])
        assert diff == {base["concept"]}  # exactly one tag apart: the concept
        assert (partner["edit"] == "add") == (base["concept"] in partner["tags"])
        assert not tax.violations(base["tags"]) and not tax.violations(partner["tags"])
        edits[(base["concept"], partner["edit"])] += 1
    assert {c for c, _ in edits} == {"piano", "fast tempo", "jazz"} and {e for _, e in edits} == {"add", "remove"}


def test_pipeline_keeps_pair_members_together(demo_model, tmp_path):
    tags = tmp_path / "cf.jsonl"
    res = run_cli("vae", "sample", "--model", demo_model, "-n", "4", "--counterfactual", "6", "-o", tags)
    assert res.code == 0, res.err
    out = tmp_path / "run"
    res = run_cli("pipeline", "run", "--preset", "quick_test", "--tags", tags, "-o", out)
    assert res.code == 0, res.err
    captions = read_jsonl(out / "caption" / "captions.jsonl")
    clips = read_jsonl(out / "tta" / "metadata.jsonl")
    import pandas as pd

    split_of = {r["id"]: s for s in ("train", "validation", "test") if (out / "dataset" / s / "metadata.parquet").is_file()
                for r in pd.read_parquet(out / "dataset" / s / "metadata.parquet").to_dict("records")}
    for pair in {r["pair_id"] for r in captions if r.get("pair_id")}:
        cap = [r for r in captions if r.get("pair_id") == pair]
        aud = [r for r in clips if r.get("pair_id") == pair]
        assert len(cap) == len(aud) == 2
        assert cap[0]["provenance"]["caption"]["seed"] == cap[1]["provenance"]["caption"]["seed"]
        assert aud[0]["provenance"]["audio"]["seed"] == aud[1]["provenance"]["audio"]["seed"]
        assert split_of[aud[0]["id"]] == split_of[aud[1]["id"]]
