"""``tagtune tta``: the audio stage: MusicGen generation at scale (resumable, sharded), CLAP/FAD evaluation, verification.

Each command parses its flags (every flag sets one config key), composes its typed config
(:mod:`tagtune.tta.config`) and calls one function of :mod:`tagtune.tta` with the rich reporter
(imported lazily: torch and transformers load only when a command runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from tagtune.cli.common import (
    NO_METAVAR,
    PASS_THROUGH,
    ConfigDirs,
    Output,
    Overrides,
    Preset,
    Seed,
    ShowConfig,
    compose_or_show,
    config_default,
    examples,
    out_console,
    split_input,
)
from tagtune.cli.render import number, reporter
from tagtune.errors import ConfigError
from tagtune.tta.config import COMMANDS, EVALUATE, GENERATE, MERGE, VERIFY

if TYPE_CHECKING:
    from tagtune.tta.verify_report import VerifyResult

app = typer.Typer(
    help="Audio stage: render captions to audio with MusicGen (batched, resumable, sharded) and score it with CLAP/FAD.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

Prompts = Annotated[
    Optional[str],
    typer.Argument(help="Prompts: JSONL (caption/text, optional id, duration), CSV/TSV/Parquet (data.caption_column) or .txt (one per line).",
                   show_default=False, metavar="PROMPTS"),
]
RunDir = Annotated[Optional[str], typer.Argument(help="A `tagtune tta generate` output directory.", show_default=False, metavar="DIR")]


@app.command(
    "generate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune tta generate prompts.jsonl --preset quick_test -o out",
        "tagtune tta generate captions.jsonl -o audio --duration 10 --batch-size 8 generation=tta/best",
        "torchrun --nproc-per-node 8 -m tagtune tta generate captions.jsonl -o audio model=tta/musicgen-large",
        "tagtune tta generate prompts.csv -o audio --shard 3/8 data.caption_column=description --format flac",
    ),
)
def generate(
    prompts: Prompts = None,
    overrides: Overrides = None,
    output: Output = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar=NO_METAVAR, help="Regenerate every clip, discarding earlier output in DIR.")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: render only this worker's share (default: from torchrun/SLURM).", show_default=False)] = None,
    limit: Annotated[Optional[str], typer.Option("--limit", metavar="INT", help="Only the first N prompts.", show_default=False)] = None,
    batch_size: Annotated[Optional[str], typer.Option("--batch-size", "-b", metavar="INT", help=f"Clips per model call \\[default: {config_default('tta_inference', 'generation.batch_size')}].", show_default=False)] = None,
    duration: Annotated[Optional[str], typer.Option("--duration", metavar="SECONDS", help="Seconds per clip (replaces max_new_tokens).", show_default=False)] = None,
    audio_format: Annotated[Optional[str], typer.Option("--format", help=f"wav or flac \\[default: {config_default('tta_inference', 'generate.format')}].", show_default=False)] = None,
    seed: Seed = None,
) -> None:
    """Render prompts to DIR/audio/<id>.wav plus DIR/metadata.jsonl (Hugging Face audiofolder layout).

    Rerun the same command to resume after a crash; shards write metadata.shard-*.jsonl parts,
    combined by `tagtune tta merge DIR` (or the next unsharded run).
    """
    prompts, rest = split_input(prompts, overrides)
    cfg = compose_or_show(
        GENERATE, rest, preset, config_dir, show_config, commands=COMMANDS,
        flags={
            "generate.input": ("PROMPTS", prompts), "generate.output": ("-o", output),
            "generate.overwrite": ("--overwrite", True if overwrite else None), "generate.shard": ("--shard", shard),
            "generate.limit": ("--limit", limit), "generation.batch_size": ("--batch-size", batch_size),
            "generation.duration": ("--duration", duration), "generate.format": ("--format", audio_format), "seed": ("--seed", seed),
        },
    )
    from tagtune.tta.generate import generate as run

    result = run(cfg, reporter())
    console = out_console()
    if result.merged is not None and result.merged.merged:
        console.print(f"merged {len(result.merged.parts)} shard part(s) into {result.merged.metadata}", soft_wrap=True)
    console.print(
        f"[bold]{result.generated}[/bold] clip(s) generated ({result.clips_per_second:.2f} clips/s, "
        f"{result.audio_seconds:.1f} s of audio), {result.skipped} already done, {result.redone} rendered again; "
        f"shard {result.shard}: {result.owned} of {result.total} prompts",
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
        raise ConfigError("no DIR given", hint="tagtune tta merge DIR")
    cfg = compose_or_show(MERGE, rest, preset, config_dir, show_config, flags={"generate.output": ("DIR", folder)},
                          commands=COMMANDS)
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
        reporter().warn(f"{len(report.orphans)} audio file(s) without a metadata line: {shown}")


@app.command(
    "evaluate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune tta evaluate out --preset quick_test",
        "tagtune tta evaluate audio --reference musiccaps_wavs -o audio_eval",
        "tagtune tta evaluate audio evaluate.clap_model=laion/larger_clap_music evaluate.batch_size=32",
    ),
)
def evaluate(
    folder: RunDir = None,
    overrides: Overrides = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", "--reference-dir", help="Real audio to compute FAD against (searched recursively).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "--output-dir", "-o", help="Where the scores go \\[default: DIR/scores].", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """CLAP text-audio score per clip (CSV) and FAD against reference audio; summary JSON and a table."""
    folder, rest = split_input(folder, overrides)
    cfg = compose_or_show(
        EVALUATE, rest, preset, config_dir, show_config, commands=COMMANDS,
        flags={"evaluate.input": ("DIR", folder), "evaluate.reference": ("--reference", reference), "evaluate.output": ("-o", output)},
    )
    from rich.table import Table

    from tagtune.tta.evaluate import evaluate as run

    result = run(cfg, reporter())
    table = Table(title=f"Audio evaluation: {result.audio_dir}")
    for column in ("metric", "value", "note"):
        table.add_column(column, justify="right" if column == "value" else "left")
    table.add_row("clips", str(result.clips), "")
    table.add_row("CLAP score (mean)", f"{result.clap_mean:.4f}", f"std {result.clap_std:.4f}, {result.clap_model}")
    for name, fad in result.fads.items():
        label = "FAD (CLAP)" if name == "clap" else f"FAD ({fad.get('backbone', name)})"
        if fad.get("value") is None:
            table.add_row(label, "skipped", fad.get("note", ""))
            continue
        table.add_row(label, f"{fad['value']:.4g}", f"n={fad['n']} vs {fad['n_reference']}; {fad.get('note', '')}")
        inf = fad.get("fad_inf") or {}
        table.add_row(f"{label} inf", "-" if inf.get("value") is None else f"{inf['value']:.4g}",
                      inf.get("note") or f"extrapolated to infinitely many {fad.get('unit', 'clips')} (fit R^2 {inf.get('r2', 0):.2f})")
        fixed = fad.get("fixed_n") or {}
        if fixed:
            table.add_row(f"{label} fixed n", "-" if fixed.get("value") is None else f"{fixed['value']:.4g}",
                          fixed.get("note") or f"n={fixed['n']} per side, mean of {fixed['repeats']} draws")
    _kld_rows(table, result.kld)
    console = out_console()
    console.print(table)
    console.print(f"per-clip scores: {result.scores_csv}   summary: {result.summary_json}   manifest: {result.output_dir / 'eval_manifest.json'}")


def _kld_rows(table: Any, kld: dict[str, Any] | None) -> None:
    """KLD (``evaluate.kld.classifier``): the paired value and the distribution-level one, like the FAD rows."""
    if kld is None:
        return
    label = f"KLD ({kld.get('classifier', 'classifier')})"
    if kld.get("value") is None and kld.get("distribution") is None:
        table.add_row(label, "skipped", kld.get("note", ""))
        return
    table.add_row(label, "-" if kld.get("value") is None else f"{kld['value']:.4g}",
                  f"{kld.get('pairs', 0)} pair(s); {kld.get('note', '')}")
    if kld.get("distribution") is not None:
        table.add_row(f"{label} distribution", f"{kld['distribution']:.4g}",
                      f"mean label distributions, n={kld.get('n')} vs {kld.get('n_reference')}")


@app.command(
    "verify",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune tta verify out -o report.json",
        "tagtune tta verify out --force verification.checkers=[tempo]",
        "tagtune tta verify out tagmap=conceptcaps verification.clap.decision=margin verification.clap.margin=0.02",
        "tagtune tta verify out --shard 3/8",
    ),
)
def verify(
    folder: RunDir = None,
    overrides: Overrides = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="The summary report (JSON; a .png chart beside it) \\[default: DIR/verification_report.json].", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", metavar=NO_METAVAR, help="Judge every clip again (discard DIR/verification.jsonl).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="I/N: judge only this worker's share into its own part (default: from torchrun/SLURM).", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Judge from each clip's audio whether it carries its intended tags (tempo from the beat, the rest with CLAP).

    Uses the tagmap, checkers and CLAP model recorded in DIR/config.yaml (how the clips were made)
    unless --preset or overrides say otherwise. Writes DIR/verification.jsonl (per clip: realised, missed and unjudged tags, scores, realisation),
    resumable; prints realisation per category and checker, and writes the report and a per-tag chart.
    Shards write DIR/verification.shard-*.jsonl parts, merged by the next run without --shard.
    """
    from tagtune.tta.verify import recorded_settings

    folder, rest = split_input(folder, overrides)
    cfg = compose_or_show(
        VERIFY, rest, preset, config_dir, show_config, commands=COMMANDS,
        flags={"verification.input": ("DIR", folder), "verification.output": ("-o", output),
               "verification.force": ("--force", True if force else None), "verification.shard": ("--shard", shard)},
        recorded=recorded_settings(folder),
    )
    from tagtune.tta.verify import verify as run

    result = run(cfg, reporter())
    console = out_console()
    if not result.report:  # a shard: its part is written, the report waits for the merge
        console.print(f"{result.scored} clip(s) judged, {result.skipped} already done; shard {result.shard}: "
                      f"{result.clips} clip(s) in {result.rows_file}", soft_wrap=True)
        console.print(f"once every shard has finished: tagtune tta verify {result.folder}  (merges the parts, writes the report)",
                      soft_wrap=True)
        return
    _print_report(result)


def _print_report(result: VerifyResult) -> None:
    from rich.table import Table

    report = result.report
    table = Table(title=f"Tag realisation: {result.folder}")
    for column in ("", "judged", "realised", "rate"):
        table.add_column(column, justify="left" if not column else "right")
    overall = report["overall"]
    for name, agg in report["by_category"].items():
        table.add_row(f"category {name}", str(agg["judged"]), str(agg["realised"]), number(agg["rate"], 3))
    for name, agg in report["by_checker"].items():
        table.add_row(f"checker {name}", str(agg["judged"]), str(agg["realised"]), number(agg["rate"], 3))
    table.add_row("overall", str(overall["tags_judged"]), str(overall["tags_realised"]), number(overall["rate"], 3))
    console = out_console()
    if result.merged:
        console.print(f"merged {result.merged} verdict line(s) of shard parts into {result.rows_file}", soft_wrap=True)
    console.print(table)
    console.print(f"{report['clips']} clips ({result.scored} judged now, {result.skipped} already done); mean realisation per clip "
                  f"{number(overall['realisation_mean'], 3)}; {overall['tags_unjudged']} tag(s) no checker could judge"
                  + (f"; {report['clips_unplayable']} clip(s) unplayable (tags counted as missed)" if report.get("clips_unplayable") else "")
                  + (f"; {report['clips_without_tags']} clip(s) without tags" if report.get("clips_without_tags") else ""))
    console.print(f"per clip: {result.rows_file}   report: {result.report_path}" + (f"   chart: {result.plot_path}" if result.plot_path else ""))
