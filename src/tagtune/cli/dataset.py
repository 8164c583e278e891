"""``tagtune dataset``: export a finished dataset folder (Parquet/JSONL per split, Hub upload). (placeholder until issue 6 lands)."""

from __future__ import annotations

import typer

from tagtune.cli.common import ConfigDirs, Overrides, Preset, ShowConfig
from tagtune.errors import NotImplementedYetError

app = typer.Typer(help="Export a finished dataset folder (Parquet/JSONL per split, Hub upload). [dim](not implemented yet: issue 6)[/dim]", no_args_is_help=True, rich_markup_mode="rich")


@app.command("export", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def export_cmd(overrides: Overrides = None, preset: Preset = None, config_dir: ConfigDirs = None, show_config: ShowConfig = False) -> None:
    """Write one file per split with every column. Not implemented yet (issue 6): exits 2."""
    raise NotImplementedYetError("`tagtune dataset export` is not implemented yet (issue 6)")
