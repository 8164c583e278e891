"""``tagtune vae``: the tags stage: train a beta-VAE on tag sets, sample new sets, evaluate them.

Thin commands: parse flags, compose ``vae_training`` (flags become config updates), call one
function of :mod:`tagtune.vae`, print a short summary. Nothing heavy is imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    help="Tags stage: train a beta-VAE on tag sets, sample new sets, evaluate them.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

ModelDir = Annotated[Path | None, typer.Option("--model", "-m", help="A model directory written by `tagtune vae train`.", show_default=False)]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-2 else f"{value:.4f}"
    return str(value)


@app.command(
    "train",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune vae train -o runs/vae",
        "tagtune vae train --preset quick_test -o /tmp/vae",
        "tagtune vae train data.path=tags.csv data.aspect_column=aspect_list data.taxonomy_path=taxonomy.json -o runs/mine",
        "tagtune vae train ckpt_path=runs/vae/checkpoints/last.ckpt trainer.max_epochs=400 -o runs/vae",
    ),
)
def train(
    overrides: Overrides = None,
    output_dir: OutputDir = None,
    seed: Seed = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Train the beta-VAE and write a self-contained model directory (weights, taxonomy, config, metrics)."""
    cfg = compose_or_show(
        "vae_training", overrides, preset, config_dir, show_config,
        updates={"paths.output_dir": str(output_dir) if output_dir else None, "seed": seed},
    )
    from tagtune.vae.train import train as run_train

    result = run_train(cfg)
    m = result.metrics
    con = out_console()
    data = m["dataset"]
    con.print(f"[bold]model:[/bold] {result.model_dir}")
    for line in data["report"]:
        con.print(f"  {line}")
    con.print(
        f"  {data['train']} train / {data['val']} val / {data['test']} test sets, {data['num_tags']} tags; "
        f"{m['epochs']} epochs{' (early stop)' if m['stopped_early'] else ''} in {m['fit_seconds']:.1f} s"
    )
    con.print(f"  train loss {_fmt(m['train_loss'])}  val loss {_fmt(m['val_loss'])}  best val loss {_fmt(m['best_val_loss'])}")
    con.print(f"next: tagtune vae sample --model {result.model_dir} -n 1000 -o tags.jsonl")


@app.command(
    "sample",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune vae sample --model runs/vae -n 5000 --seed 0 -o tags.jsonl",
        "tagtune vae sample --model runs/vae -n 100 --require jazz --forbid 'male vocals' --min mood=1 --max tempo=1",
        "tagtune vae sample --model runs/vae --mode threshold --threshold 0.3 --dedupe",
        "tagtune vae sample --model runs/vae --temperature 0.8 inference.prior=normal",
    ),
)
def sample(
    overrides: Overrides = None,
    model: ModelDir = None,
    num: Annotated[int | None, typer.Option("-n", "--num-samples", help="How many tag sets.", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output JSONL (default: <model>/samples.jsonl).", show_default=False)] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", "-t", help="Scale of the latent noise.", show_default=False)] = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Probability cut for --mode threshold.", show_default=False)] = None,
    seed: Seed = None,
    mode: Annotated[str | None, typer.Option("--mode", help="sized | bernoulli | threshold.", show_default=False)] = None,
    require: Annotated[list[str] | None, typer.Option("--require", help="A tag every set must contain (repeatable).", show_default=False)] = None,
    forbid: Annotated[list[str] | None, typer.Option("--forbid", help="A tag no set may contain (repeatable).", show_default=False)] = None,
    min_count: Annotated[list[str] | None, typer.Option("--min", help="CATEGORY=K: at least K tags of the category (repeatable).", show_default=False)] = None,
    max_count: Annotated[list[str] | None, typer.Option("--max", help="CATEGORY=K: at most K tags of the category (repeatable).", show_default=False)] = None,
    dedupe: Annotated[bool | None, typer.Option("--dedupe/--no-dedupe", help="Keep only distinct sets.", show_default=False)] = None,
    taxonomy: Annotated[Path | None, typer.Option("--taxonomy", help="Refuse the model unless its taxonomy equals this file.", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Sample new tag sets from a trained model to JSONL (one set per line, docs/schema.md section 1)."""
    cfg = compose_or_show(
        "vae_training", overrides, preset, config_dir, show_config,
        updates={
            "inference.model_dir": str(model) if model else None,
            "inference.num_samples": num,
            "inference.output": str(output) if output else None,
            "inference.temperature": temperature,
            "inference.threshold": threshold,
            "inference.seed": seed,
            "inference.mode": mode,
            "inference.require": list(require) if require else None,
            "inference.forbid": list(forbid) if forbid else None,
            "inference.category_min": list(min_count) if min_count else None,
            "inference.category_max": list(max_count) if max_count else None,
            "inference.dedupe": dedupe,
            "inference.taxonomy_path": str(taxonomy) if taxonomy else None,
        },
    )
    from tagtune.vae.sample import sample as run_sample

    r = run_sample(cfg)
    p = r.params
    out_console().print(
        f"wrote {r.num_samples} tag sets to {r.path} in {r.seconds:.1f} s "
        f"(mode {p['mode']}, prior {p['prior']}, temperature {p['temperature']}, seed {p['seed']}): "
        f"{r.mean_set_size:.2f} tags/set, {r.unique_share:.1%} distinct, {r.draws} draws in {r.rounds} round(s)"
    )


@app.command(
    "evaluate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune vae evaluate tags.jsonl --reference heldout.csv --train train.csv --plots plots/",
        "tagtune vae evaluate tags.jsonl --reference real.parquet --model runs/vae -o metrics.json",
        "tagtune vae evaluate a.csv --reference b.csv --tags-column aspect_list --taxonomy taxonomy.json",
    ),
)
def evaluate(
    samples: Annotated[str | None, typer.Argument(help="Generated tag sets (JSONL / CSV / Parquet ...).", show_default=False)] = None,
    overrides: Overrides = None,
    reference: Annotated[Path | None, typer.Option("--reference", "-r", help="Real tag sets to compare with.", show_default=False)] = None,
    train: Annotated[Path | None, typer.Option("--train", help="Training tag sets (for novelty).", show_default=False)] = None,
    taxonomy: Annotated[Path | None, typer.Option("--taxonomy", help="Taxonomy JSON/YAML (default: the --model's, else data.taxonomy_path).", show_default=False)] = None,
    model: ModelDir = None,
    plots: Annotated[Path | None, typer.Option("--plots", help="Write PNG plots into this directory.", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Metrics JSON (default: <SAMPLES>.metrics.json).", show_default=False)] = None,
    tags_column: Annotated[str | None, typer.Option("--tags-column", help="Tag column of both files (default: auto).", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Compare sampled tag sets with real ones: JSD, co-occurrence r, set-size W1, precision/recall/density/coverage, MMD."""
    samples, rest = split_input(samples, overrides)
    cfg = compose_or_show(
        "vae_training", rest, preset, config_dir, show_config,
        updates={
            "evaluation.samples": samples,
            "evaluation.reference": str(reference) if reference else None,
            "evaluation.train": str(train) if train else None,
            "evaluation.taxonomy_path": str(taxonomy) if taxonomy else None,
            "evaluation.model_dir": str(model) if model else None,
            "evaluation.plots_dir": str(plots) if plots else None,
            "evaluation.output": str(output) if output else None,
            "evaluation.tags_column": tags_column,
        },
    )
    from rich.table import Table

    from tagtune.vae.evaluate import METRICS
    from tagtune.vae.evaluate import evaluate as run_evaluate

    r = run_evaluate(cfg)
    err = err_console()
    for line in r.report:
        err.print(f"[dim]{line}[/dim]")
    m = r.metrics
    table = Table(title=f"{m['n_generated']} generated vs {m['n_reference']} reference sets (k-NN on {m['knn_subsample']} each)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better")
    table.add_column("what it measures")
    for key, better, what in METRICS:
        if key in m:
            table.add_row(key, _fmt(m[key]), better, what)
    by_cat = m.get("mean_set_size_by_category") or {}
    ref_cat = m.get("reference_mean_set_size_by_category") or {}
    for cat, value in by_cat.items():
        table.add_row(f"  {cat} tags/set", _fmt(value), "", f"reference: {_fmt(ref_cat.get(cat))}")
    con = out_console()
    con.print(table)
    con.print(f"metrics: {r.json_path}")
    if r.plots:
        con.print(f"plots: {', '.join(str(p) for p in r.plots)}")
