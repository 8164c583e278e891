"""``tagtune dataset export``: a finished dataset folder in the formats trainers and the Hub read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from tagtune.cli.common import NO_METAVAR, examples, out_console
from tagtune.cli.render import reporter
from tagtune.pipeline.exporters.base import EXPORTERS

app = typer.Typer(help="Export a finished dataset folder (Parquet with embedded audio, JSONL, audiocraft, WebDataset; Hub upload), or write a report page about it.",
                  no_args_is_help=True, rich_markup_mode="rich")


@app.command(
    "export",
    epilog=examples(
        "tagtune dataset export demo --format parquet -o demo-parquet",
        "tagtune dataset export demo/dataset --format webdataset -o shards",
        "tagtune dataset export demo --format audiocraft -o egs/tagtune",
        "tagtune dataset export demo --exclude musiccaps_test.csv -o clean",
        "tagtune dataset export demo --push me/my-music-concepts",
        "tagtune dataset export demo --format concepts -o concept_sets --random-sets 20",
    ),
)
def export_cmd(
    directory: Annotated[Path, typer.Argument(help="A pipeline output folder or its dataset/ folder.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"{' | '.join(EXPORTERS.builtins)}, or a format of yours (package.module:Class, or an entry point of {EXPORTERS.group}).")] = "parquet",
    output: Annotated[Optional[Path], typer.Option("--output", "--output-dir", "-o", help="Where to write \\[default: DIR/export-<format>].", show_default=False)] = None,
    exclude: Annotated[Optional[list[Path]], typer.Option("--exclude", help="Drop rows whose tag set or caption is in this evaluation file (repeatable).", show_default=False)] = None,
    push: Annotated[Optional[str], typer.Option("--push", "--push-to-hub", help="Upload the Parquet export to this Hub dataset repo.", show_default=False)] = None,
    licence_checked: Annotated[bool, typer.Option("--licence-checked", metavar=NO_METAVAR, help="Push although the declared licence is less restrictive than an input's (you checked it).")] = False,
    shard_mb: Annotated[int, typer.Option("--shard-mb", help="Largest Parquet / tar shard, in MB of audio.")] = 500,
    min_examples: Annotated[int, typer.Option("--min-examples", help="concepts: leave out concepts with fewer positive clips.", min=1)] = 1,
    random_sets: Annotated[int, typer.Option("--random-sets", help="concepts: random clip sets to write (TCAV's random concepts).", min=0)] = 10,
    random_size: Annotated[int, typer.Option("--random-size", help="concepts: clips per random set.", min=1)] = 50,
    seed: Annotated[int, typer.Option("--seed", help="concepts: seed of the negative matching's tie-breaks and the random sets.", min=0)] = 0,
    option: Annotated[Optional[list[str]], typer.Option("--option", metavar="KEY=VALUE", help="A setting for the format (a format of yours reads options.params; repeatable).", show_default=False)] = None,
) -> None:
    """Write the dataset for a trainer or the Hub: each format into its own folder, read back by its own library."""
    from tagtune.pipeline.export import export_dataset, parse_options

    result = export_dataset(directory, fmt=fmt if ":" in fmt else fmt.lower(), out_dir=output,
                            exclude=[str(p) for p in exclude or []], push=push, licence_checked=licence_checked,
                            shard_bytes=shard_mb << 20, reporter=reporter(),
                            params={"min_examples": min_examples, "random_sets": random_sets,
                                    "random_size": random_size, "seed": seed, **parse_options(option or [])})
    console = out_console()
    for split, files in result.files.items():
        console.print(f"{split:<12} {result.rows[split]:>7} rows  {', '.join(str(f) for f in files[:3])}"
                      + (f" (+{len(files) - 3} more)" if len(files) > 3 else ""))
    if result.excluded:
        console.print(f"leakage guard: {result.excluded} rows left out")
    if result.pushed_to:
        console.print(f"pushed to {result.pushed_to}")


@app.command(
    "report",
    epilog=examples(
        "tagtune dataset report demo",
        "tagtune dataset report demo/dataset -o demo/dataset/report.html --per-concept 8",
        "tagtune dataset report demo -o site/index.html --copy-audio",
        "tagtune dataset report demo --seed 1 -o other-sample.html",
    ),
)
def report_cmd(
    directory: Annotated[Path, typer.Argument(help="A pipeline output folder or its dataset/ folder.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The HTML page to write \\[default: report.html beside the dataset folder].", show_default=False)] = None,
    per_concept: Annotated[int, typer.Option("--per-concept", help="Clips per tag in the gallery (a seeded sample; the tag's counterfactual pairs first).")] = 4,
    copy_audio: Annotated[bool, typer.Option("--copy-audio", metavar=NO_METAVAR, help="Copy the sampled clips into <page>-audio/ beside the page (to publish both); by default the players point at the dataset's clips.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the gallery's sample.")] = 0,
) -> None:
    """One static HTML page about a dataset: summary, tag counts, co-occurrence, realisation, loudness and tempo, a concept gallery with players."""
    from tagtune.pipeline.report_page import write_report

    result = write_report(directory, output, per_concept=per_concept, copy_audio=copy_audio, seed=seed,
                          reporter=reporter())
    console = out_console()
    console.print(f"report: {result.path} ({result.size_bytes / 1024:.0f} KB; {result.clips} clips, "
                  f"{result.shown} in the gallery of {result.concepts} tags)", soft_wrap=True)
    if result.audio_dir is not None:
        console.print(f"copied {result.copied} clips to {result.audio_dir}: publish the page together with that folder",
                      soft_wrap=True)
    else:
        console.print("the players point at the dataset's clips: keep the page where it is relative to them, "
                      "or pass --copy-audio to publish it", soft_wrap=True)
    console.print(f"open it in a browser (no server needed): {result.path.resolve().as_uri()}", soft_wrap=True)
