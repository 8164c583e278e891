"""Sampling: schema, determinism, modes, constraints, de-duplication and their errors (in-process CLI)."""

from __future__ import annotations

import re

import pytest

from helpers import error_line
from helpers import read_jsonl as _lines
from tagtune.records.taxonomy import Taxonomy


def test_sample_writes_schema_lines_and_sidecar(tagtune_main, demo_model, tmp_path):
    out = tmp_path / "s.jsonl"
    code, stdout, _ = tagtune_main("vae", "sample", "--model", demo_model, "-n", "300", "--seed", "3", "-o", out)
    assert code == 0, stdout
    assert "wrote 300 tag sets" in stdout
    tax = Taxonomy.load(demo_model / "taxonomy.json")
    rows = _lines(out)
    assert len(rows) == 300
    assert [r["id"] for r in rows[:2]] == ["s3-000000", "s3-000001"]
    assert len({r["id"] for r in rows}) == 300
    from tagtune import __version__
    from tagtune.vae.modeldir import load_model_dir

    fingerprint = load_model_dir(demo_model).fingerprint
    for r in rows:
        assert list(r) == ["id", "tags", *tax.categories, "provenance"]
        assert r["tags"] and r["tags"] == tax.sort(r["tags"])  # known tags, taxonomy order
        assert sum((r[c] for c in tax.categories), []) == r["tags"]
        assert r["provenance"] == {"tags": {
            "model": demo_model.name, "fingerprint": fingerprint, "mode": "sized", "prior": "aggregate",
            "temperature": 1.0, "threshold": 0.5, "seed": 3, "tagtune_version": __version__}}
    assert (tmp_path / "s.jsonl.config.yaml").is_file()
    assert not list(tmp_path.glob(".s.jsonl*"))  # no temporary file left behind


def test_same_seed_identical_bytes_other_seed_differs(tagtune_main, demo_model, tmp_path):
    paths = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        paths[name] = tmp_path / f"{name}.jsonl"
        code, out, _ = tagtune_main("vae", "sample", "--model", demo_model, "-n", "200", "--seed", str(seed), "-o", paths[name])
        assert code == 0, out
    assert paths["a"].read_bytes() == paths["b"].read_bytes()
    a_sets = [r["tags"] for r in _lines(paths["a"])]
    c_sets = [r["tags"] for r in _lines(paths["c"])]
    assert a_sets != c_sets


@pytest.mark.parametrize("mode", ["sized", "bernoulli", "threshold"])
def test_modes(tagtune_main, demo_model, tmp_path, mode):
    out = tmp_path / "s.jsonl"
    # (the quick_test model is barely trained: its thresholded sets would mostly break the taxonomy's rules)
    code, stdout, _ = tagtune_main("vae", "sample", "--model", demo_model, "-n", "200", "--mode", mode,
                                   "--threshold", "0.2", "-o", out, "sample.rules=false")
    assert code == 0, stdout
    rows = _lines(out)
    assert len(rows) == 200 and all(r["provenance"]["tags"]["mode"] == mode for r in rows)
    if mode == "threshold":  # deterministic given the latent: fewer distinct sets than stochastic modes
        assert all(r["provenance"]["tags"]["threshold"] == 0.2 for r in rows)


def test_constraints_are_honoured(tagtune_main, demo_model, tmp_path):
    out = tmp_path / "s.jsonl"
    code, stdout, err = tagtune_main(
        "vae", "sample", "--model", demo_model, "-n", "150", "-o", out,
        "--require", "Piano", "--forbid", "strings", "--forbid", "calm", "--min", "mood=1", "--max", "instrument=2",
        "--min", "tempo=1",
    )
    assert code == 0, err
    rows = _lines(out)
    assert len(rows) == 150
    for r in rows:
        assert "piano" in r["tags"]
        assert "strings" not in r["tags"] and "calm" not in r["tags"]
        assert len(r["mood"]) >= 1 and len(r["tempo"]) >= 1
        assert len(r["instrument"]) <= 2


def test_dedupe_gives_distinct_sets(tagtune_main, demo_model, tmp_path):
    out = tmp_path / "s.jsonl"
    # Threshold sampling repeats itself a lot: dedupe must still deliver distinct sets.
    code, _, err = tagtune_main("vae", "sample", "--model", demo_model, "-n", "40", "--mode", "threshold",
                                "--threshold", "0.3", "--dedupe", "-o", out)
    assert code == 0, err
    sets = [tuple(r["tags"]) for r in _lines(out)]
    assert len(sets) == 40 and len(set(sets)) == 40


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-n", "0"], "sample.num_samples is 0 and no counterfactual pairs are asked for"),
        (["-n", "-5"], "sample.num_samples: expected an integer >= 0, got -5 (set by -n)"),
        (["-n", "abc"], "sample.num_samples: expected an integer >= 0, got 'abc' (set by -n)"),
        (["--require", "pianoo"], "sample.require: 'pianoo' is not a tag of the model's taxonomy (hint: did you mean 'piano'"),
        (["--forbid", "kazoo"], "sample.forbid: 'kazoo' is not a tag"),
        (["--require", "piano", "--forbid", "piano"], "both required and forbidden"),
        (["--min", "genre=2", "--max", "genre=1"], "sample.category_min 2 is above sample.category_max 1"),
        (["--min", "colour=1"], "sample.category_min: unknown category 'colour'"),
        (["--min", "genre"], "must look like CATEGORY=COUNT"),
        (["--mode", "greedy"], "sample.mode: expected one of sized, bernoulli, threshold, got 'greedy' (set by --mode)"),
    ],
)
def test_bad_sampling_requests_exit_2_with_one_line(tagtune_main, demo_model, tmp_path, args, expected):
    out = tmp_path / "s.jsonl"
    code, _, err = tagtune_main("vae", "sample", "--model", demo_model, "-o", out, *args)
    assert code == 2
    error_line(err, expected)
    assert not out.exists()


def test_constraints_beyond_the_draw_budget_keep_the_sets_drawn(tagtune_main, demo_model, tmp_path):
    """The budget is sample.max_attempts draws per requested set (at least a batch each)."""
    out = tmp_path / "s.jsonl"
    code, _, err = tagtune_main("vae", "sample", "--model", demo_model, "-o", out, "-n", "20", "--min", "genre=15",
                                "sample.max_attempts=2", "sample.batch_size=64")
    assert code == 2
    # the progress line of the sampling that ran may precede the error on stderr
    line = error_line(err, "of 20 sets met the constraints after 128 draws", str(out), "sample.max_attempts", only=False)
    kept = int(re.search(r"only (\d+) of 20", line).group(1))
    assert out.is_file() and len(_lines(out)) == kept < 20


def test_threshold_reference_behaviour_collapses_sizes(demo_model, tmp_path):
    """Thresholding keeps only confident tags: smaller sets and fewer distinct ones than `sized`."""
    from tagtune.config.commands import compose_command
    from tagtune.vae.config import COMMANDS, SAMPLE
    from tagtune.vae.sample import sample

    stats = {}
    for mode in ("sized", "threshold"):
        cfg = compose_command(SAMPLE, COMMANDS, [f"sample.mode={mode}", "sample.min_tags=0", "sample.rules=false"],
                              updates={"sample.model": str(demo_model), "sample.num_samples": 500,
                                       "sample.output": str(tmp_path / f"{mode}.jsonl")})
        stats[mode] = sample(cfg)
    assert stats["threshold"].mean_set_size < stats["sized"].mean_set_size
    assert stats["threshold"].unique_share < stats["sized"].unique_share


def test_constraints_from_config_mappings(demo_model):
    from tagtune.config.commands import compose_command
    from tagtune.vae.config import COMMANDS, SAMPLE
    from tagtune.vae.constraints import parse_constraints

    tax = Taxonomy.load(demo_model / "taxonomy.json")
    s = compose_command(SAMPLE, COMMANDS, updates={
        "sample.require": ["Jazz"], "sample.forbid": [], "sample.category_min": {"Mood": 1},
        "sample.category_max": {"tempo": "1"}, "sample.min_tags": 2, "sample.max_tags": 8}).sample
    c = parse_constraints(s, tax)
    assert c.require == [tax.index["jazz"]] and c.category_min == {"mood": 1} and c.category_max == {"tempo": 1}
    assert (c.min_tags, c.max_tags) == (2, 8) and c.active()
