"""``tagtune vae``: the tags stage: train a beta-VAE on tag sets, sample new sets, evaluate them.

Thin commands: parse flags, compose the command's typed config from ``vae_training`` (each flag
sets one config key; see :mod:`tagtune.vae.config`), call one function of :mod:`tagtune.vae` with
the rich reporter, print a short summary.
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
    listing,
    out_console,
    split_input,
)
from tagtune.cli.render import number, reporter
from tagtune.vae.config import COMMANDS, EVALUATE, SAMPLE, TRAIN

if TYPE_CHECKING:
    from tagtune.vae.evaluate import EvaluationResult

app = typer.Typer(
    help="Tags stage: train a beta-VAE on tag sets, sample new sets, evaluate them.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

ModelDir = Annotated[Optional[Path], typer.Option("--model", "-m", help="A model directory written by `tagtune vae train`.", show_default=False)]


def _default(key: str) -> str:
    return config_default("vae_training", key)


@app.command(
    "train",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune vae train -o runs/vae",
        "tagtune vae train --preset quick_test -o /tmp/vae",
        "tagtune vae train data.path=tags.csv data.tags_column=aspect_list data.taxonomy_path=taxonomy.json -o runs/mine",
        "tagtune vae train train.resume=runs/vae/checkpoints/last.ckpt trainer.max_epochs=400 -o runs/vae",
    ),
)
def train(
    overrides: Overrides = None,
    output: Output = None,
    seed: Seed = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Train the beta-VAE and write a self-contained model directory (weights, taxonomy, config, metrics).

    Rerun the same command after an interruption: training continues from the run's last checkpoint.
    """
    cfg = compose_or_show(TRAIN, overrides, preset, config_dir, show_config,
                          flags={"train.output": ("-o", output), "seed": ("--seed", seed)}, commands=COMMANDS)
    from tagtune.vae.train import train as run

    result = run(cfg, reporter())
    m, data = result.metrics, result.metrics["dataset"]
    con = out_console()
    con.print(f"[bold]model:[/bold] {result.model_dir}")
    con.print(
        f"  {data['train']} train / {data['val']} val / {data['test']} test sets, {data['num_tags']} tags; "
        f"{m['epochs']} epochs{' (early stop)' if m['stopped_early'] else ''} in {m['fit_seconds']:.1f} s"
    )
    con.print(f"  train loss {number(m['train_loss'])}  {_validation(m, cfg.data.val_fraction)}")
    con.print(f"next: tagtune vae sample --model {result.model_dir} -n 1000 -o tags.jsonl")


def _validation(m: dict[str, Any], val_fraction: float) -> str:
    """The validation part of the summary: never a bare '-' (say why a number is missing)."""
    if not m["dataset"]["val"]:
        why = "" if val_fraction == 0 else f" left no rows of {m['dataset']['rows_kept']}"
        return f"no validation split (data.val_fraction={val_fraction:g}{why}): no val loss, no best checkpoint"
    best = (f"best val loss {number(m['best_val_loss'])}" if m["best_val_loss"] is not None
            else "best val loss not tracked (callbacks.model_checkpoint is off)")
    return f"val loss {number(m['val_loss'])}  {best}"


@app.command(
    "sample",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune vae sample --model runs/vae -n 5000 --seed 0 -o tags.jsonl",
        "tagtune vae sample --model runs/vae -n 100 --require jazz --forbid 'male vocals' --min mood=1 --max tempo=1",
        "tagtune vae sample --model runs/vae --mode threshold --threshold 0.3 --dedupe",
        "tagtune vae sample --model runs/vae --temperature 0.8 sample.prior=normal",
        "tagtune vae sample --model runs/vae -n 5000 --min-per-tag 20 --seed 0",
        "tagtune vae sample --model runs/vae -n 0 --counterfactual 200 --concept piano --concept 'fast tempo'",
    ),
)
def sample(
    overrides: Overrides = None,
    model: ModelDir = None,
    num: Annotated[Optional[str], typer.Option("-n", "--num-samples", metavar="INT", help=f"How many tag sets \\[default: {_default('sample.num_samples')}].", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "--output-dir", "-o", help="Output JSONL \\[default: <model>/samples.jsonl].", show_default=False)] = None,
    temperature: Annotated[Optional[str], typer.Option("--temperature", "-t", metavar="FLOAT", help=f"Scale of the latent noise \\[default: {_default('sample.temperature')}].", show_default=False)] = None,
    threshold: Annotated[Optional[str], typer.Option("--threshold", metavar="FLOAT", help=f"Probability cut for --mode threshold, in [0, 1] \\[default: {_default('sample.threshold')}].", show_default=False)] = None,
    seed: Seed = None,
    mode: Annotated[Optional[str], typer.Option("--mode", help=f"sized | bernoulli | threshold \\[default: {_default('sample.mode')}].", show_default=False)] = None,
    require: Annotated[Optional[list[str]], typer.Option("--require", help="A tag every set must contain (repeatable).", show_default=False)] = None,
    forbid: Annotated[Optional[list[str]], typer.Option("--forbid", help="A tag no set may contain (repeatable).", show_default=False)] = None,
    min_count: Annotated[Optional[list[str]], typer.Option("--min", help="CATEGORY=K: at least K tags of the category (repeatable).", show_default=False)] = None,
    max_count: Annotated[Optional[list[str]], typer.Option("--max", help="CATEGORY=K: at most K tags of the category (repeatable).", show_default=False)] = None,
    dedupe: Annotated[Optional[bool], typer.Option("--dedupe/--no-dedupe", metavar=NO_METAVAR, help="Keep only distinct sets.", show_default=False)] = None,
    taxonomy: Annotated[Optional[Path], typer.Option("--taxonomy", help="Refuse the model unless its taxonomy equals this file (its rules apply).", show_default=False)] = None,
    min_per_tag: Annotated[Optional[str], typer.Option("--min-per-tag", metavar="K", help="Every taxonomy tag in at least K sets (topped up by sets drawn with the tag, so more than -n sets when K x tags needs it: a warning says about how many before sampling).", show_default=False)] = None,
    counterfactual: Annotated[Optional[str], typer.Option("--counterfactual", metavar="N", help="Also write N pairs of sets that differ in exactly one tag.", show_default=False)] = None,
    concept: Annotated[Optional[list[str]], typer.Option("--concept", help="A tag the counterfactual pairs differ in (repeatable; needs --counterfactual; not a --require/--forbid tag; default: every tag the constraints leave free).", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Sample new tag sets from a trained model to JSONL (one set per line, docs/schema.md).

    No set breaks the taxonomy's rules (exclusive tags, category counts). --min-per-tag balances
    rare tags; --counterfactual adds minimal pairs (pair_id, concept, edit) for concept probing.
    """
    cfg = compose_or_show(
        SAMPLE, overrides, preset, config_dir, show_config, commands=COMMANDS,
        flags={
            "sample.model": ("--model", model), "sample.num_samples": ("-n", num), "sample.output": ("-o", output),
            "sample.temperature": ("--temperature", temperature), "sample.threshold": ("--threshold", threshold),
            "seed": ("--seed", seed), "sample.mode": ("--mode", mode), "sample.require": ("--require", listing(require)),
            "sample.forbid": ("--forbid", listing(forbid)), "sample.category_min": ("--min", listing(min_count)),
            "sample.category_max": ("--max", listing(max_count)), "sample.dedupe": ("--dedupe", dedupe),
            "sample.taxonomy_path": ("--taxonomy", taxonomy), "sample.min_per_tag": ("--min-per-tag", min_per_tag),
            "sample.counterfactual": ("--counterfactual", counterfactual), "sample.concepts": ("--concept", listing(concept)),
        },
    )
    from tagtune.vae.sample import sample as run

    r = run(cfg, reporter())
    p = r.params
    con = out_console()
    con.print(
        f"wrote {r.num_samples} tag sets to {r.path} in {r.seconds:.1f} s "
        f"(mode {p['mode']}, prior {p['prior']}, temperature {p['temperature']}, seed {p['seed']}): "
        f"{r.mean_set_size:.2f} tags/set, {r.unique_share:.1%} distinct, {r.draws} draws in {r.rounds} round(s)"
    )
    if r.balance is not None:
        b = r.balance
        rarest = min(b["counts"], key=lambda t: (b["counts"][t], t))
        con.print(f"quotas: {len(b['quotas'])} tags; the rarest, '{rarest}', is in {b['counts'][rarest]} sets; "
                  f"{sum(b['topped_up'].values())} sets drawn for {len(b['topped_up'])} tag(s) below quota, "
                  f"{b['removed']} of the model's own sets removed to keep the count"
                  + (f" ({b['extra']} extra sets kept)" if b["extra"] else "") + f"; per tag: {r.path}.balance.json")
    if r.pairs:
        con.print(f"counterfactual pairs: {r.pairs} (rows with pair_id, concept, edit)")


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
    samples: Annotated[Optional[str], typer.Argument(help="Generated tag sets (JSONL / CSV / Parquet ...).", show_default=False)] = None,
    overrides: Overrides = None,
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="Real tag sets to compare with.", show_default=False)] = None,
    train: Annotated[Optional[Path], typer.Option("--train", help="Training tag sets (for novelty).", show_default=False)] = None,
    taxonomy: Annotated[Optional[Path], typer.Option("--taxonomy", help="Taxonomy JSON/YAML (default: the --model's, else data.taxonomy_path).", show_default=False)] = None,
    model: ModelDir = None,
    plots: Annotated[Optional[Path], typer.Option("--plots", help="Write PNG plots into this directory.", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "--output-dir", "-o", help="Metrics JSON \\[default: <SAMPLES>.metrics.json].", show_default=False)] = None,
    tags_column: Annotated[Optional[str], typer.Option("--tags-column", help="Tag column of both files (default: auto).", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Compare sampled tag sets with real ones: JSD, co-occurrence r, set-size W1, precision/recall/density/coverage, MMD."""
    samples, rest = split_input(samples, overrides)
    cfg = compose_or_show(
        EVALUATE, rest, preset, config_dir, show_config, commands=COMMANDS,
        flags={
            "evaluate.input": ("SAMPLES", samples), "evaluate.reference": ("--reference", reference),
            "evaluate.train": ("--train", train), "evaluate.taxonomy_path": ("--taxonomy", taxonomy),
            "evaluate.model": ("--model", model), "evaluate.plots_dir": ("--plots", plots),
            "evaluate.output": ("-o", output), "evaluate.tags_column": ("--tags-column", tags_column),
        },
    )
    from tagtune.vae.evaluate import evaluate as run

    _render_evaluation(run(cfg, reporter()))


def _render_evaluation(r: EvaluationResult) -> None:
    from rich.table import Table

    from tagtune.vae.evaluate import METRICS

    m = r.metrics
    table = Table(title=f"{m['n_generated']} generated vs {m['n_reference']} reference sets (k-NN on {m['knn_subsample']} each)")
    for column in ("metric", "value", "better", "what it measures"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for key, better, what in METRICS:
        if key in m:
            table.add_row(key, number(m[key]), better, what)
    for rule, count in (m.get("rule_violations_detail") or {}).get("samples", {}).get("by_rule", {}).items():
        table.add_row(f"  {rule}", str(count), "lower", "generated sets breaking this rule")
    ref_cat = m.get("reference_mean_set_size_by_category") or {}
    for cat, value in (m.get("mean_set_size_by_category") or {}).items():
        table.add_row(f"  {cat} tags/set", number(value), "", f"reference: {number(ref_cat.get(cat))}")
    con = out_console()
    con.print(table)
    con.print(f"metrics: {r.json_path}")
    if r.plots:
        con.print(f"plots: {', '.join(str(p) for p in r.plots)}")
