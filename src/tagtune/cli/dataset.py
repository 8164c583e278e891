"""``tagtune dataset``: export a finished dataset folder, one file per split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tagtune.cli.common import examples, out_console

app = typer.Typer(help="Export a finished dataset folder (Parquet/JSONL per split, Hub upload).", no_args_is_help=True, rich_markup_mode="rich")


@app.command(
    "export",
    epilog=examples(
        "tagtune dataset export demo --format parquet",
        "tagtune dataset export demo/dataset --format jsonl -o exported",
        "tagtune dataset export demo --embed-audio --push-to-hub me/my-music-concepts",
    ),
)
def export_cmd(
    directory: Annotated[Path, typer.Argument(help="A pipeline output folder or its dataset/ folder.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="parquet or jsonl.")] = "parquet",
    output_dir: Annotated[Optional[Path], typer.Option("--output-dir", "-o", help="Where to write (default: DIR/export).", show_default=False)] = None,
    embed_audio: Annotated[bool, typer.Option("--embed-audio", help="Store audio bytes in the file instead of paths (parquet only).")] = False,
    push_to_hub: Annotated[Optional[str], typer.Option("--push-to-hub", help="Upload to this Hub dataset repo (needs the `hub` extra and a network).", show_default=False)] = None,
) -> None:
    """Write one file per split with every column (audio as paths, or embedded bytes)."""
    from tagtune.pipeline.export import export_dataset

    result = export_dataset(directory, fmt=fmt.lower(), out_dir=output_dir, embed_audio=embed_audio, push_to_hub=push_to_hub)
    console = out_console()
    for split, path in result.files.items():
        console.print(f"{split:<12} {result.rows[split]:>7} rows  {path}")
    if result.pushed_to:
        console.print(f"pushed to {result.pushed_to}")
