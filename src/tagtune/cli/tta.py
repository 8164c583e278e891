"""``tagtune tta``: the audio stage: MusicGen generation at scale (resumable, sharded) and CLAP/FAD evaluation.

Each command parses its flags, composes ``tta_inference`` and calls one function of
:mod:`tagtune.tta` (imported lazily: torch and transformers load only when a command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tagtune.cli.common import (
    PASS_THROUGH,
    ConfigDirs,
    OutputDir,
    Overrides,
    Preset,
    Seed,
    ShowConfig,
    compose_or_show,
    err_console,
    examples,
    out_console,
    split_input,
)

app = typer.Typer(
    help="Audio stage: render captions to audio with MusicGen (batched, resumable, sharded) and score it with CLAP/FAD.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Prompts = Annotated[
    str | None,
    typer.Argument(help="Prompts: JSONL (caption/text, optional id, duration), CSV/TSV/Parquet (data.text_column) or .txt (one per line).",
                   show_default=False, metavar="PROMPTS"),
]
RunDir = Annotated[str | None, typer.Argument(help="A `tagtune tta generate` output directory.", show_default=False, metavar="DIR")]


@app.command(
    "generate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune tta generate prompts.jsonl --preset quick_test -o out",
        "tagtune tta generate captions.jsonl -o audio --duration 10 --batch-size 8 generation=tta/best",
        "torchrun --nproc-per-node 8 -m tagtune tta generate captions.jsonl -o audio model=tta/musicgen-large",
        "tagtune tta generate prompts.csv -o audio --shard 3/8 data.text_column=description --format flac",
    ),
)
def generate(
    prompts: Prompts = None,
    overrides: Overrides = None,
    output_dir: OutputDir = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Regenerate every clip, discarding earlier output in DIR.")] = False,
    shard: Annotated[str | None, typer.Option("--shard", help="I/N: render only this worker's share (default: from torchrun/SLURM).", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N prompts.", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Clips per model call.", show_default=False)] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Seconds per clip (replaces max_new_tokens).", show_default=False)] = None,
    audio_format: Annotated[str | None, typer.Option("--format", help="wav or flac.", show_default=False)] = None,
    seed: Seed = None,
) -> None:
    """Render prompts to DIR/audio/<id>.wav plus DIR/metadata.jsonl (Hugging Face audiofolder layout).

    Rerun the same command to resume after a crash; shards write metadata.shard-*.jsonl parts,
    combined by `tagtune tta merge DIR` (or the next unsharded run).
    """
    prompts, rest = split_input(prompts, overrides)
    cfg = compose_or_show(
        "tta_inference", rest, preset, config_dir, show_config,
        updates={
            "data.path": prompts, "paths.output_dir": str(output_dir) if output_dir else None,
            "output.overwrite": True if overwrite else None, "output.shard": shard, "data.limit": limit,
            "generation.batch_size": batch_size, "generation.duration": duration,
            "output.format": audio_format, "seed": seed,
        },
    )
    from tagtune.tta.generate import generate as run_generate

    result = run_generate(cfg)
    console = out_console()
    if result.merged is not None and result.merged.merged:
        console.print(f"merged {len(result.merged.parts)} shard part(s) into {result.merged.metadata}", soft_wrap=True)
    console.print(
        f"[bold]{result.generated}[/bold] clip(s) generated ({result.clips_per_second:.2f} clips/s, "
        f"{result.audio_seconds:.1f} s of audio), {result.skipped} already done, {result.adopted} recovered, "
        f"{result.repaired} re-rendered; shard {result.shard}: {result.owned} of {result.total} prompts",
        soft_wrap=True,
    )
    console.print(f"metadata: {result.metadata}   audio: {result.output_dir / 'audio'}   model: {result.model} @ {result.sample_rate} Hz",
                  soft_wrap=True)


@app.command(
    "merge",
    context_settings=PASS_THROUGH,
    epilog=examples("tagtune tta merge audio", "tagtune tta merge /scratch/run42"),
)
def merge(
    folder: RunDir = None,
    overrides: Overrides = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Combine the metadata parts of sharded runs into DIR/metadata.jsonl (atomic), with checks.

    Duplicate ids and missing or unreadable audio exit 2 without changing anything; audio files
    that no line points at are reported.
    """
    folder, rest = split_input(folder, overrides)
    if folder is None and not show_config:
        from tagtune.errors import ConfigError

        raise ConfigError("no DIR given", hint="tagtune tta merge DIR")
    cfg = compose_or_show("tta_inference", rest, preset, config_dir, show_config, updates={"paths.output_dir": folder})
    from tagtune.tta.merge import merge as run_merge

    report = run_merge(cfg)
    console = out_console()
    if report.merged:
        console.print(f"merged {len(report.parts)} part(s) into {report.metadata}: {report.lines} clip(s)"
                      + (f", {report.replaced} line(s) replaced by newer shard lines" if report.replaced else "")
                      + (f", {report.deduplicated} identical duplicate line(s) dropped" if report.deduplicated else ""))
    else:
        console.print(f"nothing to merge: {report.metadata} holds {report.lines} clip(s), all files read back")
    if report.orphans:
        shown = ", ".join(report.orphans[:5]) + (f" and {len(report.orphans) - 5} more" if len(report.orphans) > 5 else "")
        err_console().print(f"[yellow]warning:[/yellow] {len(report.orphans)} audio file(s) without a metadata line: {shown}")


@app.command(
    "evaluate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune tta evaluate out --preset quick_test",
        "tagtune tta evaluate audio --reference-dir musiccaps_wavs -o audio_eval",
        "tagtune tta evaluate audio evaluation.clap_model=laion/larger_clap_music evaluation.batch_size=32",
    ),
)
def evaluate(
    folder: RunDir = None,
    overrides: Overrides = None,
    reference_dir: Annotated[Path | None, typer.Option("--reference-dir", help="Real audio to compute FAD against (searched recursively).", show_default=False)] = None,
    output_dir: OutputDir = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """CLAP text-audio score per clip (CSV) and FAD against reference audio; summary JSON and a table."""
    folder, rest = split_input(folder, overrides)
    cfg = compose_or_show(
        "tta_inference", rest, preset, config_dir, show_config,
        updates={"evaluation.audio_dir": folder, "evaluation.reference_dir": str(reference_dir) if reference_dir else None,
                 "evaluation.output_dir": str(output_dir) if output_dir else None},
    )
    from rich.table import Table

    from tagtune.tta.evaluate import evaluate as run_evaluate

    result = run_evaluate(cfg)
    table = Table(title=f"Audio evaluation: {result.audio_dir}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note")
    table.add_row("clips", str(result.clips), "")
    table.add_row("CLAP score (mean)", f"{result.clap_mean:.4f}", f"std {result.clap_std:.4f}, {result.clap_model}")
    table.add_row("FAD", f"{result.fad:.4g}" if result.fad is not None else "skipped", result.fad_note)
    console = out_console()
    console.print(table)
    console.print(f"per-clip scores: {result.scores_csv}   summary: {result.summary_json}")
