"""``tagtune pipeline``: run the whole chain (tags -> captions -> audio) into a dataset folder. (placeholder until issue 6 lands)."""

from __future__ import annotations

import typer

from tagtune.cli.common import ConfigDirs, Overrides, Preset, ShowConfig
from tagtune.errors import NotImplementedYetError

app = typer.Typer(help="Run the whole chain (tags -> captions -> audio) into a dataset folder. [dim](not implemented yet: issue 6)[/dim]", no_args_is_help=True, rich_markup_mode="rich")


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_cmd(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Train/sample tags, caption them, render audio and assemble the dataset. Not implemented yet (issue 6): exits 2."""
    raise NotImplementedYetError("`tagtune pipeline run` is not implemented yet (issue 6)")
