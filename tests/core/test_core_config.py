"""The packaged config tree: every main config composes with every preset of its stage,
overrides apply, errors are one line, and the registry is built by scanning the YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from tagtune.caption import config as caption
from tagtune.config.commands import compose_command
from tagtune.config.compose import compose
from tagtune.config.tree import (
    STAGES,
    config_dir,
    copy_config,
    groups,
    main_configs,
    presets,
    stage_of,
)
from tagtune.errors import ConfigError
from tagtune.pipeline.registry import check_main, commands_of, plain

REPO = Path(__file__).resolve().parents[2]
MAIN_CONFIGS = ["vae_training", "caption_fine_tuning", "caption_inference", "tta_inference", "pipeline"]


def test_config_dir_is_the_repository_tree_in_a_checkout():
    assert config_dir() == REPO / "config"


def test_main_configs_found_by_scanning():
    assert main_configs() == sorted(p.stem for p in (REPO / "config").glob("*.yaml"))
    assert set(MAIN_CONFIGS) <= set(main_configs())


def test_groups_found_by_scanning_every_file():
    listed = {f"{g}/{o}" for g, opts in groups().items() for o in opts}
    on_disk = {
        p.relative_to(REPO / "config").with_suffix("").as_posix()
        for p in (REPO / "config").rglob("*.yaml")
        if len(p.relative_to(REPO / "config").parts) > 1
    }
    assert listed == on_disk


def test_every_stage_has_a_quick_test_preset():
    for stage in STAGES:
        assert "quick_test" in presets(stage), stage


@pytest.mark.parametrize("name", MAIN_CONFIGS)
def test_main_config_composes_with_every_preset_of_its_stage(name):
    stage = stage_of(name)
    base = compose(name)
    assert base.task_name == name
    for preset in presets(stage):
        cfg = compose(name, preset=preset)
        assert OmegaConf.to_container(cfg, resolve=True)  # fully resolvable
        assert cfg.paths.output_dir.endswith(cfg.paths.run_id)


def test_every_yaml_parses_and_has_a_header_comment():
    for path in (REPO / "config").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        yaml.safe_load(text)
        first = text.lstrip().splitlines()[0]
        assert first.startswith("#"), f"{path} should open with a comment saying what it is for"


def test_every_group_option_composes_into_a_main_config_that_uses_the_group():
    """group=option works for every option of every group a main config selects.

    Options are tried in the main configs that select their group (``model: vae/default`` ->
    the options under ``model/vae``; ``evaluate: vae`` -> those of ``evaluate``); the config schema
    refuses another stage's option (``evaluate=caption`` in vae_training), so each option must
    compose into at least one of them.
    """
    all_groups = groups()
    users: dict[str, list[str]] = {}  # "group=folder/option" -> main configs that select the group
    for name in MAIN_CONFIGS:
        raw = yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())
        for entry in raw.get("defaults", []):
            if not isinstance(entry, dict):
                continue
            (group, option), = entry.items()
            folder, _, _ = str(option).rpartition("/")
            for opt in all_groups[f"{group}/{folder}" if folder else group]:
                users.setdefault(f"{group}={folder}/{opt}" if folder else f"{group}={opt}", []).append(name)
    unusable = []
    for override, names in users.items():
        errors = []
        for name in names:
            try:
                compose(name, [override])
                break
            except ConfigError as exc:
                errors.append(f"{name}: {exc}")
        else:
            unusable.append(f"{override} ({'; '.join(errors)})")
    assert len(users) > 30
    assert unusable == []
    selectable = {o.replace("=", "/") for o in users}
    listed = {f"{g}/{o}" for g, opts in all_groups.items() for o in opts if g.split("/")[0] not in ("preset", "sweeps")}
    assert listed - selectable == set(), "group options that no main config can select"


def test_overrides_apply_and_preset_loses_to_overrides():
    cfg = compose("vae_training", ["trainer.max_epochs=3", "data.batch_size=64"])
    assert cfg.trainer.max_epochs == 3 and cfg.data.batch_size == 64
    quick = compose("vae_training", preset="quick_test")
    assert quick.trainer.max_epochs != compose("vae_training").trainer.max_epochs
    both = compose("vae_training", ["trainer.max_epochs=7"], preset="quick_test")
    assert both.trainer.max_epochs == 7


def test_updates_win_and_flow_through_interpolations(tmp_path):
    cfg = compose("vae_training", ["seed=5"], updates={"seed": 9, "paths.output_dir": str(tmp_path)})
    assert cfg.seed == 9 and cfg.data.split_seed == 9
    assert cfg.paths.output_dir == str(tmp_path)


def test_unknown_update_key_is_a_config_error():
    with pytest.raises(ConfigError, match="no key 'nope.x'"):
        compose("vae_training", updates={"nope.x": 1})


@pytest.mark.parametrize(
    "overrides, preset, pattern",
    [
        (["trainer.no_such_key=1"], None, r"no_such_key"),
        (["model=vae/nope"], None, r"could not find 'model/vae/nope'.*beta_low"),
        (["x=[1"], None, r"cannot parse override 'x=\[1'"),
        ([], "nope", r"could not find 'preset/vae/nope'.*quick_test"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides, preset, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        compose("vae_training", overrides, preset=preset)
    assert "\n" not in str(info.value)


def test_unknown_main_config_lists_the_available_ones():
    with pytest.raises(ConfigError, match="available: .*vae_training"):
        compose("nope")


def test_user_config_dir_adds_presets_and_a_preset_can_be_a_file(tmp_path):
    user = tmp_path / "mine" / "preset" / "vae"
    user.mkdir(parents=True)
    (user / "big.yaml").write_text("# @package _global_\n# test preset\nmodel:\n  hidden_dim: 999\n")
    cfg = compose("vae_training", preset="big", config_dirs=[tmp_path / "mine"])
    assert cfg.model.hidden_dim == 999
    cfg2 = compose("vae_training", preset=str(user / "big.yaml"))
    assert cfg2.model.hidden_dim == 999
    with pytest.raises(ConfigError, match="not a directory"):
        compose("vae_training", config_dirs=[tmp_path / "missing"])


def test_a_main_config_can_be_a_file_path_using_packaged_groups(tmp_path):
    mine = tmp_path / "vae_mine.yaml"
    mine.write_text("# mine\ndefaults:\n  - vae_training\n  - _self_\nseed: 3\n")
    cfg = compose(str(mine))
    assert cfg.seed == 3 and cfg.model.latent_dim == compose("vae_training").model.latent_dim


def test_copy_config_refuses_to_overwrite_without_force(tmp_path):
    dest = copy_config("preset/vae/quick_test", tmp_path)
    assert dest.read_text() == (REPO / "config/preset/vae/quick_test.yaml").read_text()
    with pytest.raises(ConfigError, match="already exists"):
        copy_config("preset/vae/quick_test", tmp_path)
    copy_config("preset/vae/quick_test", tmp_path, force=True)
    with pytest.raises(ConfigError, match="no config named"):
        copy_config("preset/vae/nope", tmp_path)


def test_run_id_is_resolved_once():
    cfg = compose("vae_training")
    assert "${" not in cfg.paths.output_dir
    assert OmegaConf.to_yaml(cfg).count(cfg.paths.run_id) >= 2


def test_an_unknown_flag_among_the_overrides_is_named_as_an_option():
    with pytest.raises(ConfigError, match="unknown option '--limt'"):
        compose("caption_inference", ["--limt", "5"])


def checked(name: str, overrides: list[str] = (), preset: str | None = None):
    """A main config composed and checked the way `tagtune config show` checks it."""
    cfg = compose(name, list(overrides), preset=preset, siblings=[(c.name, c.schema) for c in commands_of(name)])
    check_main(name, plain(cfg))
    return cfg


def test_a_stage_preset_may_set_keys_of_either_command_of_the_stage(tmp_path):
    preset = tmp_path / "both.yaml"
    preset.write_text("finetune:\n  sample_captions: 1\ninfer:\n  limit: 3\ngeneration:\n  batch_size: 2\n")
    infer = compose_command(caption.INFER, caption.COMMANDS, preset=str(preset))
    assert infer.infer.limit == 3 and infer.generation.batch_size == 2 and not hasattr(infer, "finetune")
    tune = compose_command(caption.FINETUNE, caption.COMMANDS, preset=str(preset))
    assert tune.finetune.sample_captions == 1 and not hasattr(tune, "infer")
    preset.write_text("finetune:\n  sample_captions: -1\n")  # the sibling's keys are still checked
    with pytest.raises(ConfigError, match=r"finetune\.sample_captions: expected an integer >= 0, got -1"):
        compose_command(caption.INFER, caption.COMMANDS, preset=str(preset))


@pytest.mark.parametrize(
    ("name", "overrides", "key", "pattern"),
    [
        ("caption_inference", ["+generation.temprature=0.1"], "generation.temprature", r"did you mean 'generation\.temperature'"),
        ("tta_inference", ["generation.batch_size=abc"], "generation.batch_size", r"expected an integer >= 1, got 'abc'"),
        ("tta_inference", ["generation.temperature=nan"], "generation.temperature", r"expected a finite number, got nan"),
        ("vae_training", ["sample.mode=greedy"], "sample.mode", r"expected one of sized, bernoulli, threshold"),
        ("pipeline", ["num_items=0"], "num_items", r"expected an integer >= 1, got 0"),
        ("vae_training", ["+trainer.max_epohcs=3"], "trainer.max_epohcs", r"not an argument of lightning\.Trainer .*max_epochs"),
    ],
)
def test_the_schema_names_the_bad_key(name, overrides, key, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        checked(name, overrides)
    assert info.value.key == key and "\n" not in str(info.value)


def test_hydra_overrides_are_refused():
    for override in ("hydra.run.dir=x", "hydra/job_logging=disabled", "+hydra.job.chdir=true"):
        with pytest.raises(ConfigError, match="hydra.* settings have no effect in tagtune"):
            compose("vae_training", [override])


def test_an_unknown_trainer_argument_is_passed_only_if_lightning_has_it():
    cfg = compose("vae_training", ["+trainer.limit_train_batches=2"])
    assert cfg.trainer.limit_train_batches == 2
