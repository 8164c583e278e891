"""``tagtune vae``: tags stage: train a beta-VAE on tag sets, sample new sets, evaluate them. (placeholder until issue 3 lands)."""

from __future__ import annotations

import typer

from tagtune.cli.common import ConfigDirs, Overrides, Preset, ShowConfig
from tagtune.errors import NotImplementedYetError

app = typer.Typer(help="Tags stage: train a beta-VAE on tag sets, sample new sets, evaluate them. [dim](not implemented yet: issue 3)[/dim]", no_args_is_help=True, rich_markup_mode="rich")


@app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Train the beta-VAE and write a self-contained model directory. Not implemented yet (issue 3): exits 2."""
    raise NotImplementedYetError("`tagtune vae train` is not implemented yet (issue 3)")


@app.command("sample", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def sample(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Sample new tag sets from a trained model to JSONL. Not implemented yet (issue 3): exits 2."""
    raise NotImplementedYetError("`tagtune vae sample` is not implemented yet (issue 3)")


@app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Compare sampled tag sets with real ones (JSD, co-occurrence, precision/coverage, MMD...). Not implemented yet (issue 3): exits 2."""
    raise NotImplementedYetError("`tagtune vae evaluate` is not implemented yet (issue 3)")
