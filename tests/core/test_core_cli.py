"""The CLI shell: help, version, config commands, one-line errors, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import error_line, run_cli
from tagtune import __version__
from tagtune.cli import _pop_verbose, app

HEAVY = ("torch", "transformers", "lightning", "peft", "bitsandbytes", "pytorch_lightning")


def test_help_lists_every_stage_group():
    """Each group is a command of its own: ``tagtune GROUP --help`` answers with the group's usage line."""
    code, out, _ = run_cli("--help")
    assert code == 0
    for group in ("vae", "caption", "tta", "pipeline", "dataset", "config", "plugins"):
        code, out, err = run_cli(group, "--help")
        assert code == 0, err
        assert f"Usage: tagtune {group}" in " ".join(out.split()), out


def test_version():
    code, out, _ = run_cli("--version")
    assert code == 0 and out == f"tagtune {__version__}\n"


@pytest.mark.parametrize("argv", [["--help"], ["config", "list"], ["config", "show", "vae_training"], ["vae", "--help"], ["caption", "--help"], ["tta", "--help"], ["pipeline", "--help"]])
def test_light_commands_import_no_heavy_module(argv):
    code = (
        "import sys, json\n"
        "from tagtune.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert loaded == [], f"{argv} imported {loaded}"


def test_every_command_has_help_with_examples():
    import typer.main

    root = typer.main.get_command(app)
    missing = []
    for gname, group in root.commands.items():
        sub = getattr(group, "commands", {gname: group})
        for cname, cmd in sub.items():
            epilog = cmd.epilog or ""
            if "$ tagtune" not in epilog:
                missing.append(f"{gname} {cname}")
    assert not missing, f"commands without examples in --help: {missing}"


def test_every_stated_default_survives_the_rich_markup():
    """An unescaped ``[default: ...]`` in a help text is a rich markup tag: it vanished from --help."""
    import re

    import typer.main

    root = typer.main.get_command(app)
    checked, swallowed = 0, []
    for gname, group in root.commands.items():
        for cname, cmd in getattr(group, "commands", {gname: group}).items():
            stated = [p for p in cmd.params if "default:" in (getattr(p, "help", None) or "")]
            if not stated:
                continue
            argv = [gname, cname, "--help"] if gname != cname else [gname, "--help"]
            code, out, _ = run_cli(*argv, env={"COLUMNS": "250"})
            assert code == 0
            flat = re.sub(r"[\s│]+", " ", out)
            for param in stated:
                checked += 1
                if "default:" not in flat or param.help.split("default:")[1].split()[0].strip("].") not in flat:
                    swallowed.append(f"{gname} {cname} {param.name}")
    assert checked >= 5
    assert not swallowed, f"--help lost the stated default of: {swallowed}"


def test_config_show_applies_overrides(tagtune_cli):
    proc = tagtune_cli("config", "show", "vae_training", "trainer.max_epochs=3")
    assert proc.returncode == 0
    assert "  max_epochs: 3\n" in proc.stdout


def test_config_list_names_main_configs_and_quick_test_presets(tagtune_cli):
    proc = tagtune_cli("config", "list")
    assert proc.returncode == 0
    for name in ("vae_training", "caption_fine_tuning", "caption_inference", "tta_inference", "quick_test"):
        assert name in proc.stdout
    one = tagtune_cli("config", "list", "preset")
    assert "preset/pipeline" in one.stdout and "trainer" not in one.stdout


@pytest.mark.parametrize(
    "argv, culprit",
    [
        (["config", "show", "vae_training", "trainer.no_such_key=1"], "no_such_key"),
        (["config", "show", "vae_training", "--preset", "nope"], "nope"),
        (["config", "show", "no_such_config"], "no_such_config"),
        (["config", "show", "vae_training", "model=vae/missing"], "model/vae/missing"),
        (["config", "list", "nogroup"], "nogroup"),
    ],
)
def test_config_errors_are_one_line_exit_2_without_traceback(tagtune_cli, argv, culprit):
    proc = tagtune_cli(*argv)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert culprit in lines[0] and "Traceback" not in proc.stderr


def test_verbose_anywhere_shows_the_traceback(tagtune_cli):
    proc = tagtune_cli("config", "show", "vae_training", "trainer.no_such_key=1", "-v")
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def test_pop_verbose_stops_at_double_dash():
    assert _pop_verbose(["a", "-v", "--", "-v"]) == (["a", "--", "-v"], True)
    assert _pop_verbose(["a"]) == (["a"], False)


def test_config_show_raw_group_option_and_cp(tagtune_cli, tmp_path):
    proc = tagtune_cli("config", "show", "model/vae/default")
    assert proc.returncode == 0 and proc.stdout.startswith("#")
    dest = tmp_path / "mine.yaml"
    assert tagtune_cli("config", "cp", "preset/vae/quick_test", dest).returncode == 0
    assert dest.is_file()
    again = tagtune_cli("config", "cp", "preset/vae/quick_test", dest)
    assert again.returncode == 2 and "--force" in again.stderr


def test_sweep_dry_run_expands_the_grid(tagtune_cli, tmp_path):
    proc = tagtune_cli("sweep", "run", "vae_beta", "--dry-run", "-o", tmp_path)
    assert proc.returncode == 0
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 10  # 5 betas x 2 latent sizes
    assert all(line.startswith("tagtune vae train model.beta=") for line in lines)
    assert len({line.split(" -o ")[1] for line in lines}) == 10


def test_generated_reference_docs_are_up_to_date():
    """docs/cli.md and docs/configuration.md are generated; `make docs` refreshes them."""
    script = __import__("pathlib").Path(__file__).resolve().parents[2] / "scripts" / "gen_docs.py"
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- flags and overrides are config keys, checked by the config schema ------------------------------
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vae", "sample", "-n", "abc"], "error: sample.num_samples: expected an integer >= 0, got 'abc' (set by -n)"),
        (["vae", "sample", "-n", "-5"], "error: sample.num_samples: expected an integer >= 0, got -5 (set by -n)"),
        (["pipeline", "run", "--preset", "quick_test", "-n", "abc"], "error: num_items: expected an integer >= 1, got 'abc' (set by -n)"),
        (["pipeline", "run", "--preset", "quick_test", "-n", "-5"], "error: num_items: expected an integer >= 1, got -5 (set by -n)"),
        (["tta", "generate", "p.jsonl", "--batch-size", "0"], "error: generation.batch_size: expected an integer >= 1, got 0 (set by --batch-size)"),
        (["tta", "generate", "p.jsonl", "--duration", "-1"], "error: generation.duration: expected a number > 0"),
        (["tta", "generate", "p.jsonl", "--limit", "abc"], "error: generate.limit: expected an integer >= 1, got 'abc' (set by --limit)"),
        (["caption", "infer", "t.jsonl", "--batch-size", "x"], "error: generation.batch_size: expected an integer >= 1, got 'x' (set by --batch-size)"),
        (["tta", "generate", "p.jsonl", "--seed", "-1"], "error: seed: expected an integer >= 0, below 2^32, got -1 (set by --seed)"),
        (["tta", "generate", "p.jsonl", "generation.batch_size=0"], "error: generation.batch_size: expected an integer >= 1, got 0"),
        (["tta", "generate", "p.jsonl", "generation.guidance_scale=abc"], "error: generation.guidance_scale: expected a number >= 0, got 'abc'"),
        (["caption", "infer", "t.jsonl", "generation.temperature=nan"], "error: generation.temperature: expected a finite number, got nan"),
        (["caption", "infer", "t.jsonl", "+generation.temprature=0.1"],
         "error: unknown config key 'generation.temprature': nothing reads it (hint: did you mean 'generation.temperature'?)"),
        (["vae", "train", "+trainer.max_epohcs=3"], "trainer.max_epohcs"),
        (["vae", "train", "hydra.run.dir=x"], "error: override 'hydra.run.dir=x': hydra.* settings have no effect in tagtune"),
        (["tta", "generate", "p.jsonl", "hydra/job_logging=disabled"], "error: override 'hydra/job_logging=disabled'"),
    ],
)
def test_bad_values_exit_2_with_one_line_naming_the_key(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # nothing may be written, not even a run directory
    code, out, err = run_cli(*argv)
    assert code == 2 and out == ""
    assert message in error_line(err)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_key_without_plus_names_the_closest_key():
    code, _, err = run_cli("tta", "generate", "p.jsonl", "generation.temprature=0.1", "--show-config")
    assert code == 2
    assert "generation.temperature" in error_line(err)


@pytest.mark.parametrize("command", [["vae", "train"], ["caption", "infer", "t.jsonl"]])
def test_a_bad_seed_flag_is_named_as_seed(command):
    code, _, err = run_cli(*command, "--seed", "abc", "--show-config")
    assert code == 2
    assert "seed: expected an integer >= 0, below 2^32, got 'abc' (set by --seed)" in error_line(err)


# -- presets and `config validate` ------------------------------------------------------------------
def test_a_preset_file_without_the_package_header_still_applies(tmp_path):
    preset = tmp_path / "fast.yaml"
    preset.write_text("# my preset, no package line\ntrainer:\n  max_epochs: 4\nmodel:\n  hidden_dim: 48\n")
    code, out, err = run_cli("config", "show", "vae_training", "--preset", preset)
    assert code == 0, err
    import yaml

    cfg = yaml.safe_load(out)
    assert cfg["trainer"]["max_epochs"] == 4 and cfg["model"]["hidden_dim"] == 48
    code, out, err = run_cli("vae", "train", "--preset", preset, "--show-config", "-o", tmp_path / "m")
    assert code == 0 and "  max_epochs: 4\n" in out, err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- trainer.max_epochs=3\n", "is a YAML list, not a mapping of config keys"),
        ("# @package trainer\nmax_epochs: 3\n", "declares a package other than _global_"),
        ("trainer:\n  max_epochs: lots\n", "trainer.max_epochs: expected an integer"),
        ("model:\n  hidden_dimm: 3\n", "unknown config key 'model.hidden_dimm'"),
    ],
)
def test_a_bad_preset_file_is_one_line(tmp_path, text, message):
    preset = tmp_path / "bad.yaml"
    preset.write_text(text)
    code, _, err = run_cli("vae", "train", "--preset", preset, "-o", tmp_path / "m")
    assert code == 2
    assert message in error_line(err)
    assert not (tmp_path / "m").exists()


def test_config_validate_accepts_a_good_preset_and_names_the_bad_key(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("# @package _global_\ntrainer:\n  max_epochs: 4\nsample:\n  num_samples: 10\n")
    code, out, err = run_cli("config", "validate", good)
    assert code == 0, err
    assert out.startswith(f"ok: {good} is a valid vae preset")
    headerless = tmp_path / "headerless.yaml"
    headerless.write_text("generation:\n  batch_size: 2\n  duration: 1.5\n")
    code, out, err = run_cli("config", "validate", headerless, "--stage", "tta")
    assert code == 0 and "valid tta preset" in out, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("# @package _global_\ntrainer:\n  max_epochs: 4\nsample:\n  num_samples: -1\n")
    code, out, err = run_cli("config", "validate", bad)
    assert code == 2 and out == ""
    assert "sample.num_samples: expected an integer >= 0, got -1" in error_line(err)
    typo = tmp_path / "typo.yaml"
    typo.write_text("generation:\n  temprature: 0.5\n")
    code, _, err = run_cli("config", "validate", typo, "--stage", "caption")
    assert code == 2 and "did you mean 'generation.temperature'" in error_line(err)


def test_config_validate_a_main_config_file(tmp_path):
    mine = tmp_path / "vae_mine.yaml"
    mine.write_text("# mine\ndefaults:\n  - vae_training\n  - _self_\nseed: 3\n")
    code, out, err = run_cli("config", "validate", mine)
    assert code == 0 and "valid vae main config" in out, err
    mine.write_text("# mine\ndefaults:\n  - vae_training\n  - _self_\nseed: -3\n")
    code, _, err = run_cli("config", "validate", mine)
    assert code == 2 and "got -3" in error_line(err)
