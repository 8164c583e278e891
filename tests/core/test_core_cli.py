"""The CLI shell: help, version, config commands, one-line errors, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tagtune import __version__
from tagtune.cli import _pop_verbose, app

runner = CliRunner()
HEAVY = ("torch", "transformers", "lightning", "peft", "bitsandbytes", "pytorch_lightning")


def test_help_lists_every_stage_group():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for group in ("vae", "caption", "tta", "pipeline", "config"):
        assert group in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


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
