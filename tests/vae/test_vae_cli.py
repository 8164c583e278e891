"""End-to-end: the real `tagtune vae` commands, the model directory, resume, evaluate, and error lines."""

from __future__ import annotations

import json

import pytest

from helpers import error_line
from tagtune.records.taxonomy import Taxonomy


def _one_error_line(err: str, *needles: str, only: bool = True) -> None:
    error_line(err, *needles, only=only)


@pytest.mark.slow
def test_quick_test_train_sample_through_subprocess(tagtune_cli, tmp_path):
    model = tmp_path / "m"
    proc = tagtune_cli("vae", "train", "--preset", "quick_test", "-o", model)
    assert proc.returncode == 0, proc.stderr
    assert f"model: {model}" in proc.stdout
    for name in ("model.safetensors", "taxonomy.json", "config.yaml", "metrics.json"):
        assert (model / name).is_file(), name
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["epochs"] == 20 and metrics["train_loss"] > 0 and metrics["dataset"]["rows_kept"] == 400
    # results on stdout, notes (what was read) on stderr
    assert "read 400 rows" in proc.stderr and "read 400 rows" not in proc.stdout
    from tagtune.vae.modeldir import load_model_dir

    loaded = load_model_dir(model)
    assert loaded.model.arch.latent_dim == 8 and len(loaded.taxonomy) == loaded.model.arch.num_tags
    out = tmp_path / "s.jsonl"
    proc = tagtune_cli("vae", "sample", "--model", model, "-n", "1000", "-o", out)
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    tax = Taxonomy.load(model / "taxonomy.json")
    assert all(json.loads(ln)["tags"] and all(t in tax for t in json.loads(ln)["tags"]) for ln in lines)


@pytest.mark.slow
def test_default_train_on_demo_data_is_quick(tagtune_main, tmp_path):
    """Acceptance 1: `tagtune vae train` with the default settings on the packaged demo data."""
    model = tmp_path / "m"
    code, out, err = tagtune_main("vae", "train", "-o", model)
    assert code == 0, err
    metrics = json.loads((model / "metrics.json").read_text())
    assert " epochs" in out and not {"fit_seconds", "total_seconds"} & set(metrics)  # timings printed, not saved
    assert (model / "checkpoints" / "last.ckpt").is_file()
    assert list((model / "metrics").glob("version_*/metrics.csv"))
    assert metrics["best_val_loss"] is not None and metrics["best_val_loss"] < metrics["dataset"]["num_tags"]


@pytest.mark.slow
def test_two_identical_trainings_leave_byte_identical_model_folders(tagtune_main, tmp_path):
    """Issue 23: the same command twice (into two folders) gives the same bytes in every file of the
    model folder but the checkpoints (Lightning records their absolute paths): weights, taxonomy, the
    saved config (no run id, no output path), metrics (no timings) and tagtune's marker."""
    folders = [tmp_path / run / "m" for run in ("a", "b")]
    for folder in folders:
        code, _, err = tagtune_main("vae", "train", "--preset", "quick_test", "-o", folder)
        assert code == 0, err
    names = sorted(p.relative_to(folders[0]).as_posix() for p in folders[0].rglob("*")
                   if p.is_file() and "checkpoints" not in p.parts)
    assert {"model.safetensors", "taxonomy.json", "config.yaml", "metrics.json", ".tagtune-run.json"} <= set(names)
    for name in names:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    saved = (folders[0] / "config.yaml").read_text()
    assert "run_id" not in saved and str(tmp_path) not in saved


def test_resume_continues_epochs(tagtune_main, tmp_path):
    model = tmp_path / "m"
    code, _, err = tagtune_main("vae", "train", "trainer.max_epochs=3", "callbacks.early_stopping.enabled=false", "-o", model)
    assert code == 0, err
    first = json.loads((model / "metrics.json").read_text())
    assert first["epochs"] == 3
    code, _, err = tagtune_main("vae", "train", "trainer.max_epochs=5", "callbacks.early_stopping.enabled=false",
                                f"train.resume={model / 'checkpoints' / 'last.ckpt'}", "-o", model)
    assert code == 0, err
    second = json.loads((model / "metrics.json").read_text())
    assert second["epochs"] == 5
    assert second["global_steps"] == first["global_steps"] * 5 // 3  # two more epochs, not five
    runs = sorted((model / "metrics").glob("version_*/metrics.csv"))
    assert len(runs) == 2  # the resumed run logs beside the first one instead of replacing it
    epochs = [{int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]} for path in runs]
    assert {0, 1, 2} <= epochs[0] and {3, 4} <= epochs[1]


def test_resume_from_missing_checkpoint_is_one_line(tagtune_main, tmp_path):
    code, _, err = tagtune_main("vae", "train", f"train.resume={tmp_path / 'nope.ckpt'}", "-o", tmp_path / "m")
    assert code == 2
    _one_error_line(err, "nope.ckpt", "checkpoint to resume from does not exist")


def test_a_diverging_run_stops_with_one_line_and_writes_no_model(tagtune_main, tmp_path):
    code, _, err = tagtune_main("vae", "train", "--preset", "quick_test", "model.learning_rate=1e30", "-o", tmp_path / "m")
    assert code == 2
    _one_error_line(err, "training diverged: the loss became nan", "model.learning_rate", only=False)
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_training_again_into_a_finished_model_dir_is_refused(tagtune_main, broken_copy):
    model = broken_copy()
    weights = (model / "model.safetensors").read_bytes()
    code, _, err = tagtune_main("vae", "train", "--preset", "quick_test", "-o", model)
    assert code == 2
    _one_error_line(err, str(model), "already holds a trained model", "train.resume=")
    assert (model / "model.safetensors").read_bytes() == weights


def test_an_unfinished_model_dir_is_resumed_automatically(tagtune_main, tmp_path):
    model = tmp_path / "m"
    args = ("vae", "train", "trainer.max_epochs=2", "callbacks.early_stopping.enabled=false", "-o", model)
    code, _, err = tagtune_main(*args)
    assert code == 0, err
    first = json.loads((model / "metrics.json").read_text())
    (model / "model.safetensors").unlink()  # as if killed after the last checkpoint, before the model was written
    code, _, err = tagtune_main(*args[:2], "trainer.max_epochs=3", *args[3:])
    assert code == 0, err
    second = json.loads((model / "metrics.json").read_text())
    assert second["resumed_from"] == str(model / "checkpoints" / "last.ckpt") and "resuming from" in err
    assert second["epochs"] == 3 and second["global_steps"] == first["global_steps"] * 3 // 2


def test_evaluate_prints_table_writes_json_and_pngs(tagtune_main, demo_model, tmp_path):
    samples = tmp_path / "s.jsonl"
    assert tagtune_main("vae", "sample", "--model", demo_model, "-n", "400", "-o", samples)[0] == 0
    from tagtune.files.readers import resolve_path

    demo = resolve_path("pkg:demo_tags.jsonl")
    plots = tmp_path / "plots"
    out = tmp_path / "metrics.json"
    code, stdout, err = tagtune_main("vae", "evaluate", samples, "--reference", demo, "--train", demo,
                                     "--model", demo_model, "--plots", plots, "-o", out)
    assert code == 0, err
    for key in ("jsd", "cooccurrence_r", "set_size_w1", "mean_set_size", "diversity", "novelty", "precision",
                "recall", "density", "coverage", "mmd2"):
        assert key in stdout
    metrics = json.loads(out.read_text())
    assert metrics["n_generated"] == 400 and metrics["n_reference"] == 400 and metrics["knn_subsample"] == 400
    assert 0 <= metrics["jsd"] <= 1 and -1 <= metrics["cooccurrence_r"] <= 1 and 0 <= metrics["novelty"] <= 1
    assert set(metrics["mean_set_size_by_category"]) == {"genre", "mood", "instrument", "tempo"}
    for name in ("tag_frequencies.png", "cooccurrence.png", "set_sizes.png"):
        png = plots / name
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_reference_against_itself_is_perfect(tagtune_main, tmp_path):
    from tagtune.files.readers import resolve_path

    demo = resolve_path("pkg:demo_tags.jsonl")
    out = tmp_path / "m.json"
    code, _, err = tagtune_main("vae", "evaluate", demo, "--reference", demo, "--train", demo, "-o", out)
    assert code == 0, err
    m = json.loads(out.read_text())
    assert m["jsd"] == pytest.approx(0, abs=1e-12) and m["cooccurrence_r"] == pytest.approx(1.0)
    assert m["set_size_w1"] == 0 and m["novelty"] == 0 and m["precision"] == 1 and m["coverage"] == 1


def test_evaluate_csv_with_per_category_columns_and_tags_column(tagtune_main, tmp_path, small_taxonomy, small_sets):
    import csv

    tax = Taxonomy.load(small_taxonomy)
    per_cat = tmp_path / "real.csv"
    with open(per_cat, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["genre", "mood", "instrument", "tempo"])
        for s in small_sets:
            c = tax.by_category(s)
            w.writerow([", ".join(c[k]) for k in ("genre", "mood", "instrument", "tempo")])
    gen = tmp_path / "gen.csv"
    with open(gen, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["labels"])
        for s in small_sets:
            w.writerow([repr(s)])
    code, _, err = tagtune_main("vae", "evaluate", gen, "--reference", per_cat, "--taxonomy", small_taxonomy,
                                "--tags-column", "labels", "-o", tmp_path / "m.json")
    assert code == 2  # --tags-column applies to both files: the per-category file has no 'labels'
    # (the notes on what was read from gen.csv come first on stderr)
    _one_error_line(err, "real.csv", "no column 'labels'", "available columns: genre, mood, instrument, tempo", only=False)
    code, _, err = tagtune_main("vae", "evaluate", gen, "--reference", per_cat, "--taxonomy", small_taxonomy,
                                "-o", tmp_path / "m.json")
    assert code == 2  # auto-detection finds no tags/aspect_list column in gen.csv
    code, _, err = tagtune_main("vae", "evaluate", per_cat, "--reference", per_cat, "--taxonomy", small_taxonomy,
                                "-o", tmp_path / "m.json")
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text())["precision"] == 1.0


# -- errors: one line, exit 2, nothing written ------------------------------------------------------
def test_duplicated_tag_taxonomy(tagtune_main, tmp_path):
    tax = tmp_path / "tax.json"
    tax.write_text(json.dumps({"genre": ["rock", "jazz"], "mood": ["calm", "Rock"]}), encoding="utf-8")
    code, _, err = tagtune_main("vae", "train", f"data.taxonomy_path={tax}", "-o", tmp_path / "m")
    assert code == 2
    _one_error_line(err, "tax.json", "'rock'", "in both 'genre' and 'mood'")
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_data_without_the_named_column(tagtune_main, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("caption,labels\nA rock song,rock\n", encoding="utf-8")
    code, _, err = tagtune_main("vae", "train", f"data.path={data}", "data.tags_column=concepts", "-o", tmp_path / "m")
    assert code == 2
    _one_error_line(err, "d.csv", "'concepts'", "available columns: caption, labels")
    # The packaged default column (tags) is missing too: still one line listing the columns.
    code, _, err = tagtune_main("vae", "train", f"data.path={data}", "-o", tmp_path / "m2")
    assert code == 2
    _one_error_line(err, "d.csv", "available columns: caption, labels")


def test_missing_model_dir(tagtune_main, tmp_path):
    code, _, err = tagtune_main("vae", "sample", "--model", tmp_path / "nope", "-n", "5")
    assert code == 2
    _one_error_line(err, "nope", "does not exist")


def test_model_dir_without_weights(tagtune_main, broken_copy):
    model = broken_copy()
    (model / "model.safetensors").unlink()
    code, _, err = tagtune_main("vae", "sample", "--model", model, "-n", "5")
    assert code == 2
    _one_error_line(err, "has no model.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_weights(tagtune_main, broken_copy, damage):
    model = broken_copy()
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"\x00not safetensors" * 20, "empty": b""}[damage])
    code, _, err = tagtune_main("vae", "sample", "--model", model, "-n", "5", "-o", model / "s.jsonl")
    assert code == 2
    _one_error_line(err, "model.safetensors", "corrupt")
    assert not (model / "s.jsonl").exists()


def test_taxonomy_mismatch(tagtune_main, demo_model, small_taxonomy, tmp_path):
    code, _, err = tagtune_main("vae", "sample", "--model", demo_model, "-n", "5", "--taxonomy", small_taxonomy,
                                "-o", tmp_path / "s.jsonl")
    assert code == 2
    _one_error_line(err, "does not match the model's", "tags vs")
    # Same tags, another order: refused too (the multi-hot layout would differ).
    tax = Taxonomy.load(demo_model / "taxonomy.json").to_dict()
    swapped = dict(reversed(list(tax.items())))
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(swapped), encoding="utf-8")
    code, _, err = tagtune_main("vae", "sample", "--model", demo_model, "-n", "5", "--taxonomy", path)
    assert code == 2
    _one_error_line(err, "different order")
    # The model's own taxonomy is accepted.
    code, _, err = tagtune_main("vae", "sample", "--model", demo_model, "-n", "5", "--taxonomy",
                                demo_model / "taxonomy.json", "-o", tmp_path / "ok.jsonl")
    assert code == 0, err


def test_edited_taxonomy_in_model_dir(tagtune_main, broken_copy):
    model = broken_copy()
    tax = json.loads((model / "taxonomy.json").read_text())
    first = next(iter(tax))
    tax[first] = tax[first][::-1]
    (model / "taxonomy.json").write_text(json.dumps(tax))
    code, _, err = tagtune_main("vae", "sample", "--model", model, "-n", "5")
    assert code == 2
    _one_error_line(err, "taxonomy.json", "does not match the taxonomy the weights were trained with")


def test_error_through_subprocess_has_no_traceback(tagtune_cli, tmp_path):
    proc = tagtune_cli("vae", "sample", "--model", tmp_path / "missing", "-n", "0")
    assert proc.returncode == 2
    _one_error_line(proc.stderr, "error: ")


def test_help_lists_examples(tagtune_cli):
    for cmd in ("train", "sample", "evaluate"):
        proc = tagtune_cli("vae", cmd, "--help")
        assert proc.returncode == 0
        assert proc.stdout.count("$ tagtune vae") >= 2, proc.stdout


def test_hub_dataset_offline_is_one_line(tagtune_main, tmp_path):
    code, _, err = tagtune_main("vae", "train", "data.path=null", "data.dataset_name=nobody/no-such-tags",
                                "-o", tmp_path / "m")
    assert code == 2
    _one_error_line(err, "nobody/no-such-tags")


def test_flags_land_in_the_config(tagtune_main, tmp_path):
    code, out, err = tagtune_main("vae", "sample", "--model", tmp_path, "-n", "7", "--seed", "5", "--mode", "bernoulli",
                                  "--require", "jazz", "--min", "mood=1", "--no-dedupe", "--show-config")
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load(out)
    s = cfg["sample"]
    assert s["num_samples"] == 7 and cfg["seed"] == 5 and s["mode"] == "bernoulli"
    assert s["require"] == ["jazz"] and s["category_min"] == ["mood=1"] and s["dedupe"] is False
    assert s["model"] == str(tmp_path)


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["-n", "abc"], "sample.num_samples: expected an integer >= 0, got 'abc' (set by -n)"),
        (["-n", "-5"], "sample.num_samples: expected an integer >= 0, got -5 (set by -n)"),
        (["-n", "0"], "sample.num_samples is 0 and no counterfactual pairs are asked for"),
        (["--temperature", "warm"], "sample.temperature"),
        (["--threshold", "1.5"], "sample.threshold"),
        (["--seed", "x"], "seed"),
        (["sample.batch_size=0"], "sample.batch_size"),
    ],
)
def test_bad_flag_values_name_the_config_key_and_the_flag(tagtune_main, tmp_path, args, key):
    code, out, err = tagtune_main("vae", "sample", "--model", tmp_path, "-o", tmp_path / "s.jsonl", *args)
    assert code == 2 and out == ""
    _one_error_line(err, key)
    assert not (tmp_path / "s.jsonl").exists()


# -- each command reads only its own keys ------------------------------------------------------------
def test_sample_show_config_has_no_training_sections(tagtune_main, tmp_path):
    code, out, err = tagtune_main("vae", "sample", "--model", tmp_path, "--show-config")
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load(out)
    assert set(cfg) == {"seed", "sample"}  # no trainer, callbacks, logger, model, data, paths
    assert "trainer" not in out and "callbacks" not in out and "logger" not in out


def test_show_config_lists_only_the_sections_each_command_reads(tagtune_main, tmp_path):
    import yaml

    expected = {
        "train": {"task_name", "seed", "paths", "data", "model", "loss", "trainer", "callbacks", "logger", "train"},
        "evaluate": {"seed", "data", "evaluate"},
    }
    for command, sections in expected.items():
        code, out, err = tagtune_main("vae", command, "--show-config")
        assert code == 0, err
        assert set(yaml.safe_load(out)) == sections, command
    code, out, _ = tagtune_main("vae", "evaluate", "--show-config")
    assert yaml.safe_load(out)["data"] == {"taxonomy_path": "pkg:taxonomy.yaml"}  # the fallback taxonomy only


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (["sample", "--model", "m"], "trainer.max_epochs=3"),
        (["sample", "--model", "m"], "model.beta=2"),
        (["evaluate", "s.jsonl"], "data.path=x.csv"),
        (["train"], "sample.num_samples=3"),
        (["train"], "evaluate.k=5"),
    ],
)
def test_a_key_the_command_does_not_read_is_refused_in_one_line(tagtune_main, tmp_path, monkeypatch, command, key):
    monkeypatch.chdir(tmp_path)  # nothing may be written, not even a run directory
    code, out, err = tagtune_main("vae", *command, key)
    assert code == 2 and out == ""
    name = key.split("=")[0]
    _one_error_line(err, f"config key '{name}' is not read by `tagtune vae {command[0]}`")
    assert list(tmp_path.iterdir()) == []


def test_a_preset_key_for_train_is_accepted_and_dropped_by_sample(tagtune_main, tmp_path):
    # quick_test sets trainer.max_epochs and model.* (vae train) and sample.num_samples (vae sample)
    code, out, err = tagtune_main("vae", "sample", "--model", tmp_path, "--preset", "quick_test", "--show-config")
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load(out)
    assert cfg["sample"]["num_samples"] == 50 and "trainer" not in cfg and "model" not in cfg
    code, out, err = tagtune_main("vae", "evaluate", "--preset", "quick_test", "--show-config")
    assert code == 0, err
    assert yaml.safe_load(out)["evaluate"]["subsample"] == 200


def test_a_bad_preset_value_for_a_sibling_command_is_still_refused(tagtune_main, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("trainer:\n  max_epochs: lots\n", encoding="utf-8")
    code, _, err = tagtune_main("vae", "sample", "--model", tmp_path, "--preset", preset, "--show-config")
    assert code == 2
    _one_error_line(err, "trainer.max_epochs: expected an integer")


def test_an_unknown_key_still_names_the_closest(tagtune_main, tmp_path):
    code, _, err = tagtune_main("vae", "sample", "--model", tmp_path, "sample.temprature=0.5")
    assert code == 2
    _one_error_line(err, "unknown config key 'sample.temprature'", "did you mean 'sample.temperature'?")
