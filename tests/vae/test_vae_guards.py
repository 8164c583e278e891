"""Settings that used to do nothing, or something else than asked, without a word (issue 23, round 2).

Each is refused in one line naming the settings, or done with a visible warning: a required tag
that is also a pair concept, --concept without pairs, quotas that multiply the output, a loss that
grows without becoming NaN, a summary with no validation, a directory given as a file.
"""

from __future__ import annotations

import json

import pytest

from helpers import error_line, read_jsonl, run_cli
from tagtune.errors import ConfigError
from tagtune.records.taxonomy import Taxonomy


def _sample(model, tmp_path, *args: str):
    return run_cli("vae", "sample", "--model", str(model), *args, "-o", str(tmp_path / "s.jsonl"))


# -- counterfactual pairs and required tags ---------------------------------------------------------------

def test_a_required_concept_is_refused_naming_both_settings(demo_model, tmp_path):
    code, out, err = _sample(demo_model, tmp_path, "--counterfactual", "10", "--concept", "piano", "--require", "piano")
    assert code == 2
    error_line(err, "'piano' is both required (sample.require, --require) and a counterfactual concept "
                    "(sample.concepts, --concept)")
    assert not (tmp_path / "s.jsonl").exists()


def test_default_concepts_leave_the_required_tag_out_so_every_row_keeps_it(demo_model, tmp_path):
    code, _, err = _sample(demo_model, tmp_path, "-n", "4", "--counterfactual", "6", "--require", "piano")
    assert code == 0, err
    rows = read_jsonl(tmp_path / "s.jsonl")
    pairs = [r for r in rows if r.get("pair_id")]
    assert len(pairs) == 12 and all("piano" in r["tags"] for r in rows)  # before: half the pair rows lacked it
    assert {r["concept"] for r in pairs} and "piano" not in {r["concept"] for r in pairs}
    assert "left out, as the constraints fix them: piano" in " ".join(err.split())


def test_parse_concepts_checks_the_named_ones_and_filters_the_defaults():
    from tagtune.vae.constraints import Constraints
    from tagtune.vae.pairs import parse_concepts

    tax = Taxonomy({"tempo": ["slow tempo", "fast tempo"], "instrument": ["piano", "drums", "organ"],
                    "_rules": {"exclusive": [["slow tempo", "fast tempo"]]}})
    cons = Constraints(require=[tax.index["slow tempo"]], forbid=[tax.index["organ"]])
    assert parse_concepts(None, tax, None, cons) == ["piano", "drums"]  # not required, forbidden or excluded
    assert parse_concepts(["drums"], tax, None, cons) == ["drums"]
    for concept, needle in (("slow tempo", "is both required"), ("organ", "'organ' is forbidden"),
                            ("fast tempo", "slow tempo and fast tempo exclude each other")):
        with pytest.raises(ConfigError, match=needle) as info:
            parse_concepts([concept], tax, None, cons)
        assert info.value.key == "sample.concepts"


def test_concept_without_counterfactual_is_refused(demo_model, tmp_path):
    code, _, err = _sample(demo_model, tmp_path, "-n", "5", "--concept", "piano")
    assert code == 2
    error_line(err, "sample.concepts (--concept) is set but sample.counterfactual (--counterfactual) is 0",
               "add --counterfactual N")
    assert not (tmp_path / "s.jsonl").exists()


# -- quotas that multiply the output -------------------------------------------------------------------------

def test_quotas_that_multiply_the_output_are_warned_before_sampling(demo_model, tmp_path):
    code, out, err = _sample(demo_model, tmp_path, "-n", "10", "--min-per-tag", "40")
    assert code == 0, err
    written = len(read_jsonl(tmp_path / "s.jsonl"))
    text = " ".join(err.split())
    assert "warning: sample.min_per_tag=40 (--min-per-tag) for 64 tags needs about" in text
    about = int(text.split("needs about ")[1].split(" sets")[0].replace(",", ""))
    assert written > 100 and 0.6 * written <= about <= 1.5 * written  # the estimate names the real order of size
    assert f"wrote {written} tag sets" in " ".join(out.split())


def test_quotas_within_the_count_give_no_warning(demo_model, tmp_path):
    code, _, err = _sample(demo_model, tmp_path, "-n", "400", "--min-per-tag", "2")
    assert code == 0, err
    assert "warning" not in err and len(read_jsonl(tmp_path / "s.jsonl")) <= 450


def test_estimate_total_replays_the_top_ups_rarest_first():
    from tagtune.vae.balance import estimate_total

    # 10 own sets hold a 5 times and b once; one tag per set: each quota is met by its own top-ups
    assert estimate_total({"a": 20, "b": 20}, {"a": 0.5, "b": 0.1}, 1.0, 10) == 19 + 15
    # two tags per set: b (the rarer) is topped up first, and its 19 sets carry a along past its quota
    assert estimate_total({"a": 20, "b": 20}, {"a": 0.5, "b": 0.1}, 2.0, 10) == 19
    # the model's own sets already meet the quotas: the count asked for
    assert estimate_total({"a": 10}, {"a": 0.5}, 3.0, 100) == 100


# -- a loss that grows without becoming NaN --------------------------------------------------------------------

def test_a_diverging_loss_stops_naming_the_learning_rate(tmp_path):
    code, out, err = run_cli("vae", "train", "--preset", "quick_test", "model.learning_rate=1e3", "-o", str(tmp_path / "m"))
    assert code == 2, out  # before: exit 0 and a model with a training loss of 1.2e10
    error_line(err, "training diverged: the mean training loss of epoch 0", "model.learning_rate=1000 is too high",
               only=False)
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_the_guard_compares_each_epoch_with_the_first_loss():
    from tagtune.models.training import Diverged
    from tagtune.vae.lightning_module import VAEModule
    from tagtune.vae.model import Architecture

    arch = Architecture(num_tags=4, latent_dim=2, hidden_dim=4, num_layers=1, dropout=0.0, batch_norm=False,
                        max_set_size=4).to_dict()
    module = VAEModule(arch, beta=1.0, learning_rate=0.5)
    for loss in (40.0, 30.0, 400.0, 20.0):  # a rise of 10x is noise, not divergence
        module._guard(loss)
    module.on_train_epoch_start()
    module._guard(20.0)
    with pytest.raises(Diverged, match=r"model.learning_rate=0.5"):
        module._guard(90_000.0)  # the epoch's mean, 45,010, is over 1000 x the first loss
    saved: dict = {}
    module.on_save_checkpoint(saved)
    restored = VAEModule(arch, beta=1.0, learning_rate=0.5)
    restored.on_load_checkpoint(saved)
    assert restored.first_loss == 40.0  # a resumed run compares with the same first loss


# -- the training summary without validation --------------------------------------------------------------------

def test_summary_without_validation_says_why(tmp_path):
    code, out, err = run_cli("vae", "train", "--preset", "quick_test", "data.val_fraction=0", "-o", str(tmp_path / "m"))
    assert code == 0, err
    text = " ".join(out.split())
    assert "no validation split (data.val_fraction=0)" in text and "best val loss -" not in text
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["dataset"]["val"] == 0


def test_summary_with_validation_but_no_checkpointing_says_why(demo_model, tmp_path):
    code, out, err = run_cli("vae", "train", "--preset", "quick_test", "-o", str(tmp_path / "m"))
    assert code == 0, err
    text = " ".join(out.split())
    assert "val loss " in text and "best val loss not tracked (callbacks.model_checkpoint is off)" in text


# -- a directory given as a file ---------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["samples", "reference", "train", "taxonomy", "sample taxonomy"])
def test_a_directory_given_as_a_file_says_so(where, demo_model, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    demo = "pkg:demo_tags.jsonl"
    args = {
        "samples": ["vae", "evaluate", str(folder), "--reference", demo],
        "reference": ["vae", "evaluate", demo, "--reference", str(folder)],
        "train": ["vae", "evaluate", demo, "--reference", demo, "--train", str(folder)],
        "taxonomy": ["vae", "evaluate", demo, "--reference", demo, "--taxonomy", str(folder)],
        "sample taxonomy": ["vae", "sample", "--model", str(demo_model), "--taxonomy", str(folder), "-n", "3"],
    }[where]
    code, _, err = run_cli(*args, "-o", str(tmp_path / "out.json"))
    assert code == 2
    msg = error_line(err, str(folder), "is a directory", only=False)
    assert "does not exist" not in msg
