"""``tagtune sweep``: run (or print) the grid of a packaged sweep config, one run per combination."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tagtune.cli.common import ConfigDirs, examples

app = typer.Typer(help="Run a grid of training runs from a sweeps/ config.", no_args_is_help=True, rich_markup_mode="rich")


@app.command(
    "run",
    epilog=examples("tagtune sweep run vae_beta --dry-run", "tagtune sweep run vae_beta -o sweeps/beta -- --preset quick_test"),
)
def run_cmd(
    name: Annotated[str, typer.Argument(help="A sweeps/ option, e.g. vae_beta, or a YAML path.")],
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Parent directory of the runs.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the commands instead of running them.")] = False,
    config_dir: ConfigDirs = None,
    extra: Annotated[Optional[list[str]], typer.Argument(help="Arguments added to every run (after --).")] = None,
) -> None:
    """Expand a sweep's grid into `tagtune` commands and run them one after another."""
    from tagtune.config.sweeps import expand_sweep, run_one

    commands = expand_sweep(name, output_dir, list(extra or []), config_dir or [])
    failures = 0
    for argv in commands:
        typer.echo(("" if dry_run else "$ ") + "tagtune " + " ".join(argv))
        if not dry_run:
            failures += not run_one(argv)
    if dry_run:
        return
    typer.echo(f"{len(commands) - failures} of {len(commands)} runs succeeded")
    if failures:
        raise typer.Exit(1)
