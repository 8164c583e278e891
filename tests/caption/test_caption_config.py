"""Typed configs of the caption commands: each reads only its keys; the caption_backends family."""

from __future__ import annotations

import json

import pytest
import yaml

from helpers import read_jsonl, run_cli, write_jsonl
from tagtune.caption.backends import CAPTION_BACKENDS
from tagtune.caption.config import COMMANDS, EVALUATE, INFER
from tagtune.config.commands import compose_command
from tagtune.config.saved import config_hash
from tagtune.config.tree import config_dir
from tagtune.plugins import load

TAGS = [{"id": "a", "tags": ["rock", "energetic"]}, {"id": "b", "tags": ["jazz", "calm", "piano"]}]


def _shown(*args: object) -> dict:
    code, out, err = run_cli(*args, "--show-config")
    assert code == 0, err
    return yaml.safe_load(out)


# -- each command reads its own keys ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("argv", "key", "owner"),
    [
        (["caption", "infer", "tags.jsonl", "--preset", "quick_test", "data.limit=5"], "data.limit", "caption finetune"),
        (["caption", "infer", "tags.jsonl", "--preset", "quick_test", "evaluate.bleu=false"], "evaluate.bleu", "caption evaluate"),
        (["caption", "finetune", "--preset", "quick_test", "generation.batch_size=4"], "generation.batch_size", "caption infer"),
        (["caption", "evaluate", "caps.jsonl", "seed=3"], "seed", "caption infer"),
        (["caption", "merge", "out", "infer.shard=0/2"], "infer.shard", "caption infer"),
    ],
)
def test_a_key_the_command_does_not_read_is_refused_before_anything_runs(tmp_path, argv, key, owner):
    res = run_cli(*argv)
    line = res.error(f"config key '{key}' is not read by `tagtune {' '.join(argv[:2])}`", f"`tagtune {owner}`")
    assert line.startswith("error: ")
    assert list(tmp_path.iterdir()) == []  # nothing written, no model loaded


def test_show_config_prints_only_the_sections_each_command_reads():
    infer = _shown("caption", "infer", "--preset", "quick_test")
    assert set(infer) == {"task_name", "seed", "device", "paths", "data", "model", "prompt", "generation", "infer"}
    assert set(infer["data"]) == {"taxonomy_path", "tags_column", "category_columns", "caption_column"}
    tune = _shown("caption", "finetune", "--preset", "quick_test")
    assert {"trainer", "callbacks", "logger", "lora", "optimizer", "scheduler", "finetune"} <= set(tune)
    assert not {"infer", "evaluate", "device"} & set(tune) and "batch_size" not in tune["generation"]
    assert tune["data"]["limit"] is None and tune["data"]["batch_size"] == 8
    assert set(_shown("caption", "evaluate", "caps.jsonl")) == {"task_name", "paths", "evaluate"}
    assert _shown("caption", "merge", "out") == {"paths": {"output_dir": "out"}}


def test_a_presets_settings_for_a_sibling_command_are_checked_then_dropped(tmp_path):
    infer = _shown("caption", "infer", "--preset", "quick_test")  # quick_test also tunes trainer, lora, optimizer
    assert infer["generation"]["max_new_tokens"] == 24 and not {"trainer", "lora", "optimizer"} & set(infer)
    preset = tmp_path / "mine.yaml"
    preset.write_text("finetune:\n  sample_captions: 2\ninfer:\n  limit: 3\n")
    assert _shown("caption", "infer", "--preset", preset)["infer"]["limit"] == 3
    preset.write_text("finetune:\n  sample_captions: -1\n")  # a sibling's key is still checked
    run_cli("caption", "infer", "--preset", preset, "--show-config").error("finetune.sample_captions: expected an integer >= 0, got -1")


def test_a_flag_that_sets_an_unread_key_is_named_with_the_flag():
    res = run_cli("caption", "infer", "t.jsonl", "--batch-size", "0", "--show-config")
    res.error("generation.batch_size: expected an integer >= 1, got 0 (set by --batch-size)")


# -- the caption_backends family -----------------------------------------------------------------

def test_builtin_backends_load_and_share_the_protocol():
    for name in ("llm", "template", "concat"):
        member = load(CAPTION_BACKENDS, name)
        assert callable(member.generate) and isinstance(member.loads_weights, bool)
    assert load(CAPTION_BACKENDS, "llm").loads_weights and not load(CAPTION_BACKENDS, "template").loads_weights


def test_an_unknown_backend_is_one_line_with_did_you_mean(tmp_path):
    tags = write_jsonl(tmp_path / "tags.jsonl", TAGS)
    out = tmp_path / "c.jsonl"
    res = run_cli("caption", "infer", tags, "model=caption/template", "model.backend=templat", "-o", out)
    res.error("unknown caption backend 'templat' (did you mean 'template'?)", "tagtune.caption_backends")
    assert not out.exists() and not (tmp_path / "c.jsonl.config.yaml").exists()
    res = run_cli("caption", "infer", tags, "model=caption/template", "model.backend=json:JSONDecoder", "-o", out)
    res.error("'json:JSONDecoder' is not a caption backend: JSONDecoder has no load(), generate(), provenance()")


SHOUT = '''
class Shout:
    """A third-party caption backend: the tags in capitals, after a word from model.options."""

    loads_weights = False

    def __init__(self, settings):
        self.word = settings.model.options.get("word", "LOUD")

    def load(self):
        return ["shout is ready"]

    def generate(self, rows, seed):
        return [f"{self.word} " + ", ".join(r.tags).upper() for r in rows]

    def provenance(self):
        return {"model": "shout", "word": self.word}
'''


def test_a_third_party_backend_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_caption_backends.py").write_text(SHOUT, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    tags = write_jsonl(tmp_path / "tags.jsonl", TAGS)
    out = tmp_path / "c.jsonl"
    res = run_cli("caption", "infer", tags, "model=caption/concat", "model.backend=my_caption_backends:Shout",
                  "+model.options.word=HEY", "-o", out)
    assert res.code == 0, res.err
    assert "shout is ready" in res.err
    rows = read_jsonl(out)
    assert [r["caption"] for r in rows] == ["HEY ROCK, ENERGETIC", "HEY JAZZ, CALM, PIANO"]
    assert rows[0]["provenance"]["caption"]["model"] == "shout" and rows[0]["provenance"]["caption"]["word"] == "HEY"
    assert isinstance(rows[0]["provenance"]["caption"]["seed"], int)


def test_the_llm_backend_names_a_key_its_model_section_lacks(tmp_path):
    tags = write_jsonl(tmp_path / "tags.jsonl", TAGS)
    res = run_cli("caption", "infer", tags, "model=caption/concat", "model.backend=llm", "-o", tmp_path / "c.jsonl")
    res.error("model.trust_remote_code: missing: the llm caption backend reads it")


@pytest.mark.parametrize("option", ["template", "concat"])
def test_baseline_provenance_hashes_the_options_yaml(tmp_path, option):
    """The baselines record ``<backend>:<hash of the model section>``: exactly the keys of the option's YAML."""
    tags = write_jsonl(tmp_path / "tags.jsonl", TAGS)
    out = tmp_path / "c.jsonl"
    assert run_cli("caption", "infer", tags, f"model=caption/{option}", "-o", out).code == 0
    section = yaml.safe_load((config_dir() / "model" / "caption" / f"{option}.yaml").read_text(encoding="utf-8"))
    prov = read_jsonl(out)[0]["provenance"]["caption"]
    assert prov["prompt"] == f"{option}:{config_hash(section, drop=())[:12]}"
    assert prov["generation"] == {} and prov["adapter"] is None and prov["model"] == option


def test_evaluate_bleu_false_turns_bleu_off(tmp_path):
    preds = write_jsonl(tmp_path / "caps.jsonl", [dict(r, caption="a rock song", reference_caption="a rock song") for r in TAGS])
    res = run_cli("caption", "evaluate", preds, "--reference-column", "reference_caption", "evaluate.bleu=false",
                  "evaluate.embedding=false", "evaluate.bertscore.enabled=false", "-o", tmp_path / "m.json")
    assert res.code == 0, res.err
    ref = json.loads((tmp_path / "m.json").read_text())["references"]
    assert all(ref[f"bleu_{n}"] == "unavailable: turned off (evaluate.bleu=false)" for n in (1, 2, 3, 4))
    assert ref["rouge_l"] == pytest.approx(1.0)


def test_typed_configs_compose_in_code():
    cfg = compose_command(INFER, COMMANDS, ["generation.batch_size=3"], preset="quick_test")
    assert cfg.generation.batch_size == 3 and cfg.model.tiny is not None and cfg.model.templates is None
    ev = compose_command(EVALUATE, COMMANDS, updates={"evaluate.input": "caps.jsonl"})
    assert ev.evaluate.input == "caps.jsonl" and ev.evaluate.bertscore.layer == 17
