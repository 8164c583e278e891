"""``tagtune tta``: audio stage: MusicGen generation at scale and CLAP/FAD evaluation. (placeholder until issue 5 lands)."""

from __future__ import annotations

import typer

from tagtune.cli.common import ConfigDirs, Overrides, Preset, ShowConfig
from tagtune.errors import NotImplementedYetError

app = typer.Typer(help="Audio stage: MusicGen generation at scale and CLAP/FAD evaluation. [dim](not implemented yet: issue 5)[/dim]", no_args_is_help=True, rich_markup_mode="rich")


@app.command("generate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def generate(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Render prompts to audio files plus metadata.jsonl (resumable, shardable). Not implemented yet (issue 5): exits 2."""
    raise NotImplementedYetError("`tagtune tta generate` is not implemented yet (issue 5)")


@app.command("merge", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def merge(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Combine the metadata parts of sharded runs, checking for duplicates and missing files. Not implemented yet (issue 5): exits 2."""
    raise NotImplementedYetError("`tagtune tta merge` is not implemented yet (issue 5)")


@app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def evaluate(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """CLAP text-audio score and FAD against reference audio. Not implemented yet (issue 5): exits 2."""
    raise NotImplementedYetError("`tagtune tta evaluate` is not implemented yet (issue 5)")
