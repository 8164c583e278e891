"""The reference system's configuration document works as written here.

ConceptCaps' ``docs/config.md`` (commit b4eaf90e of its repository; docs/conceptcaps.md) is what users
copy: its keys for the three main configs, its config folders and its two command shapes. Each key is
set through ``tagtune config show <main> KEY=VALUE`` and through the real command's ``--show-config``
and must land where tagtune reads it, with the value; a key tagtune names differently (an alias,
``resources/aliases.yaml``) lands under tagtune's name and is said once. ``inference.num_samples``
must change what ``vae sample`` really writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import count_lines, run_cli

REPO = Path(__file__).resolve().parents[2]

# (main config, the real command that reads the key, documented key, a value, where tagtune reads it)
DOCUMENTED_KEYS = [
    ("vae_training", ("vae", "train"), "model.latent_dim", 16, "model.latent_dim"),
    ("vae_training", ("vae", "train"), "model.hidden_dim", 64, "model.hidden_dim"),
    ("vae_training", ("vae", "train"), "model.beta", 0.75, "model.beta"),
    ("vae_training", ("vae", "train"), "loss.bce_weight", 0.5, "loss.bce_weight"),
    ("vae_training", ("vae", "train"), "loss.kld_weight", 0.25, "loss.kld_weight"),
    ("vae_training", ("vae", "sample"), "inference.num_samples", 5000, "sample.num_samples"),
    ("vae_training", ("vae", "sample"), "inference.temperature", 0.8, "sample.temperature"),
    ("vae_training", ("vae", "sample"), "inference.threshold", 0.3, "sample.threshold"),
    ("caption_fine_tuning", ("caption", "finetune"), "model.name", "org/some-llm", "model.name"),
    ("caption_fine_tuning", ("caption", "finetune"), "model.quantization.load_in_4bit", False,
     "model.quantization.load_in_4bit"),
    ("caption_fine_tuning", ("caption", "finetune"), "model.quantization.bnb_4bit_quant_type", "fp4",
     "model.quantization.bnb_4bit_quant_type"),
    ("caption_fine_tuning", ("caption", "finetune"), "lora.r", 8, "lora.r"),
    ("caption_fine_tuning", ("caption", "finetune"), "lora.lora_alpha", 16, "lora.lora_alpha"),
    ("caption_fine_tuning", ("caption", "finetune"), "lora.target_modules", ["q_proj", "k_proj"], "lora.target_modules"),
    ("tta_inference", ("tta", "generate"), "model.name", "facebook/musicgen-medium", "model.name"),
    ("tta_inference", ("tta", "generate"), "generation.max_new_tokens", 256, "generation.max_new_tokens"),
    ("tta_inference", ("tta", "generate"), "generation.guidance_scale", 4.0, "generation.guidance_scale"),
    ("tta_inference", ("tta", "generate"), "generation.temperature", 0.9, "generation.temperature"),
]
# The folders of the reference's config tree, as its document lists them.
DOCUMENTED_FOLDERS = ["callbacks", "data/caption", "data/tta", "data/vae", "evaluation", "generation", "logger",
                      "lora", "model/caption", "model/tta", "model/vae", "paths", "preset", "prompt", "sweeps",
                      "trainer"]


def _override(key: str, value: object) -> str:
    if isinstance(value, list):
        return f"{key}=[{','.join(value)}]"
    return f"{key}={str(value).lower() if isinstance(value, bool) else value}"


def _lookup(out: str, key: str) -> object:
    node = yaml.safe_load(out)
    for part in key.split("."):
        assert isinstance(node, dict) and part in node, f"{key} not in the printed config"
        node = node[part]
    return node


def _notes(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("# note:")]


def _check(out: str, key: str, value: object, target: str) -> None:
    landed = _lookup(out, target)
    assert landed == value or (isinstance(value, float) and landed == pytest.approx(value)), (key, landed)
    notes = _notes(out)
    if key == target:
        assert not notes, notes
    else:  # an alias: said exactly once, naming both names
        assert len(notes) == 1 and key in notes[0] and target in notes[0], notes


@pytest.mark.parametrize(("main", "command", "key", "value", "target"), DOCUMENTED_KEYS,
                         ids=[f"{m}:{k}" for m, _, k, _, _ in DOCUMENTED_KEYS])
def test_documented_key_lands_where_tagtune_reads_it(main, command, key, value, target):
    code, out, err = run_cli("config", "show", main, _override(key, value))
    assert code == 0, err
    _check(out, key, value, target)
    code, out, err = run_cli(*command, "--show-config", _override(key, value))
    assert code == 0, err
    _check(out, key, value, target)


def test_documented_inference_block_lands_together():
    """The reference's whole ``inference:`` block at once: each key said once, each value where sample reads it."""
    code, out, err = run_cli("vae", "sample", "--show-config", "inference.num_samples=11", "inference.temperature=1.5",
                             "inference.threshold=0.4")
    assert code == 0, err
    assert (_lookup(out, "sample.num_samples"), _lookup(out, "sample.temperature"), _lookup(out, "sample.threshold")) \
        == (11, 1.5, 0.4)
    assert len(_notes(out)) == 3


def test_documented_vae_command_shape():
    """``... vae_training trainer.max_epochs=100 data.batch_size=64``, as ``tagtune vae train``."""
    code, out, err = run_cli("vae", "train", "--show-config", "trainer.max_epochs=100", "data.batch_size=64")
    assert code == 0, err
    assert (_lookup(out, "trainer.max_epochs"), _lookup(out, "data.batch_size")) == (100, 64)


def test_documented_caption_command_shape():
    """``... caption_fine_tuning +preset=caption/quick_test``: Hydra's preset syntax composes the preset."""
    code, out, err = run_cli("caption", "finetune", "+preset=caption/quick_test", "--show-config")
    assert code == 0, err
    quick = run_cli("caption", "finetune", "--preset", "quick_test", "--show-config", "paths.run_id=x")
    plus = run_cli("caption", "finetune", "+preset=caption/quick_test", "--show-config", "paths.run_id=x")
    assert _lookup(out, "model.name") == "tiny" and plus.out == quick.out


def _list_groups() -> dict[str, list[str]]:
    """The group table of ``tagtune config list``: group -> its options (rows wrap onto extra lines)."""
    code, out, err = run_cli("config", "list")
    assert code == 0, err
    groups: dict[str, list[str]] = {}
    section = out[out.index("Config groups"):]
    last = None
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) != 2 or cells[0] == "group":
            continue
        if cells[0]:
            last = cells[0]
            groups[last] = []
        if last is not None:
            groups[last] += [o.strip() for o in cells[1].split(",") if o.strip()]
    return groups


def test_config_list_shows_every_documented_folder():
    groups = _list_groups()
    for folder in DOCUMENTED_FOLDERS:
        shown = [g for g in groups if g == folder or g.startswith(folder + "/")]
        assert shown, f"{folder}/ is not a config group (groups: {sorted(groups)})"
        assert all(groups[g] for g in shown), f"{folder}/ has no options"
        assert (REPO / "config" / folder).is_dir()


@pytest.fixture(scope="module")
def quick_vae(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vae") / "model"
    code, _, err = run_cli("vae", "train", "--preset", "quick_test", "-o", run)
    assert code == 0, err
    return run


@pytest.mark.slow
def test_inference_num_samples_sets_what_vae_sample_writes(quick_vae, tmp_path):
    out = tmp_path / "x.jsonl"
    code, _, err = run_cli("vae", "sample", "--model", quick_vae, "inference.num_samples=7", "-o", out)
    assert code == 0, err
    assert count_lines(out) == 7
    assert err.count("inference.num_samples") == 1 and "sample.num_samples" in err
