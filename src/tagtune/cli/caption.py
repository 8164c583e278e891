"""``tagtune caption``: LoRA fine-tuning, batched resumable inference and evaluation of the caption LLM.

Each command composes its config, calls one function of :mod:`tagtune.caption` and prints a
short summary; torch, transformers and peft are only imported inside those calls.
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
    help="Captions stage: LoRA fine-tuning, batched resumable inference and evaluation of a caption LLM.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


Adapter = Annotated[
    Path | None,
    typer.Option("--adapter", help="LoRA adapter directory (the -o of `caption finetune`); sets model.checkpoint_dir.", show_default=False),
]


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


@app.command(
    "finetune",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption finetune --preset quick_test -o runs/lora-tiny",
        "tagtune caption finetune model=caption/mistral_7b_instruct prompt=mistral lora=high_rank -o runs/lora",
        "tagtune caption finetune data.path=pairs.csv data.aspect_column=aspect_list trainer.max_epochs=3",
        "tagtune caption finetune --preset quick_test ckpt_path=runs/lora-tiny/checkpoints/last.ckpt -o runs/lora-tiny",
    ),
)
def finetune(
    overrides: Overrides = None,
    preset: Preset = None,
    output_dir: OutputDir = None,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Fine-tune a LoRA adapter that writes a caption for a tag set (QLoRA 4-bit on CUDA).

    The output directory holds the PEFT adapter (safetensors), the tokenizer, config.yaml and metrics.json (training loss, validation loss and perplexity, sample captions).
    """
    cfg = compose_or_show(
        "caption_fine_tuning", overrides, preset, config_dir, show_config,
        updates={"paths.output_dir": str(output_dir) if output_dir else None, "seed": seed},
    )
    from tagtune.caption.train import finetune as run

    res = run(cfg)
    console = out_console()
    first, last = res.train_loss_first, res.train_loss_last
    drop = f" ({100 * (last - first) / first:+.1f}%)" if first and last is not None else ""
    console.print(f"[bold]adapter[/bold] {res.output_dir}")
    console.print(f"examples: {res.train_examples} train, {res.val_examples} validation; {res.steps} steps, {res.epochs} epochs, {res.seconds:.1f} s")
    console.print(f"train loss: {_fmt(first)} -> {_fmt(last)}{drop}")
    console.print(f"validation loss: {_fmt(res.val_loss)} (best {_fmt(res.best_val_loss)}), perplexity {_fmt(res.val_perplexity, 1)}")
    for s in res.sample_captions[:3]:
        console.print(f"  [dim]{', '.join(s['tags'])}[/dim] -> {s['caption']}", markup=True, highlight=False)


@app.command(
    "infer",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption infer --preset quick_test",
        "tagtune caption infer tags.jsonl --adapter runs/lora -o captions.jsonl --batch-size 16",
        "tagtune caption infer tags.csv data.aspect_column=aspect_list generation=caption/best --limit 100",
        "tagtune caption infer tags.jsonl --adapter runs/lora -o caps.jsonl --shard 0/4",
    ),
)
def infer(
    input: Annotated[str | None, typer.Argument(help="Tag sets: JSONL of `vae sample`, or CSV/JSONL/Parquet with a tags column. Default: packaged demo tag sets.", show_default=False)] = None,
    overrides: Overrides = None,
    adapter: Adapter = None,
    preset: Preset = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output JSONL (default: <output_dir>/captions.jsonl).", show_default=False)] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Caption only the first N input rows.", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start over instead of resuming an existing output.")] = False,
    shard: Annotated[str | None, typer.Option("--shard", help="I/N: caption this worker's share (writes <stem>.shard-0000I-of-0000N.jsonl).", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b", help="Prompts generated together.", show_default=False)] = None,
    seed: Seed = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Caption tag sets with the (LoRA-tuned) LLM: batched, resumable, shardable.

    Every output line keeps the input's fields (id, tags, category lists...) and adds caption. A rerun skips ids already written; --overwrite starts over.
    """
    source, rest = split_input(input, overrides)
    cfg = compose_or_show(
        "caption_inference", rest, preset, config_dir, show_config,
        updates={
            "infer.input": source, "model.checkpoint_dir": str(adapter) if adapter else None,
            "infer.output": str(output) if output else None, "infer.limit": limit,
            "infer.overwrite": True if overwrite else None, "infer.shard": shard,
            "generation.batch_size": batch_size, "seed": seed,
        },
    )
    from tagtune.caption.infer import infer as run

    res = run(cfg)
    console = out_console()
    if res.written == 0:
        console.print(f"nothing to do: all {res.owned} ids of this shard are already in {res.output}" if res.owned
                      else f"no input ids belong to shard {res.shard}; {res.output} left as it was")
        return
    resumed = f", {res.already_done} already there" if res.already_done else ""
    console.print(f"[bold]captions[/bold] {res.output}")
    console.print(f"wrote {res.written} caption{'s' if res.written != 1 else ''}{resumed} ({res.captions_per_s:.2f} captions/s, model load {res.load_seconds:.1f} s)")
    if res.empty:
        err_console().print(f"[yellow]warning:[/yellow] {res.empty} captions came out empty after cleaning (try generation.min_new_tokens=8)")


@app.command(
    "evaluate",
    context_settings=PASS_THROUGH,
    epilog=examples(
        "tagtune caption evaluate captions.jsonl -o metrics.json",
        "tagtune caption evaluate seed_llm_captions_validation.csv --caption-column prediction --taxonomy taxonomy.json",
        "tagtune caption evaluate captions.jsonl --references refs.csv --reference-column caption",
        "tagtune caption evaluate captions.jsonl --reference-column reference_caption evaluation.embedding=false",
    ),
)
def evaluate(
    predictions: Annotated[str, typer.Argument(help="Captions to score: JSONL/CSV/Parquet with a tags column and a caption column.", show_default=False)],
    overrides: Overrides = None,
    tags_column: Annotated[str | None, typer.Option("--tags-column", help="Column holding the tags (default: tags, else aspect_list).", show_default=False)] = None,
    caption_column: Annotated[str | None, typer.Option("--caption-column", help="Column holding the caption (default: caption, else prediction).", show_default=False)] = None,
    references: Annotated[str | None, typer.Option("--references", help="File with reference captions, joined on id or by row order.", show_default=False)] = None,
    reference_column: Annotated[str | None, typer.Option("--reference-column", help="Reference caption column (of --references, else of PREDICTIONS).", show_default=False)] = None,
    taxonomy: Annotated[str | None, typer.Option("--taxonomy", help="Taxonomy (JSON/YAML) for per-category coverage.", show_default=False)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Metrics JSON (default: <output_dir>/metrics.json).", show_default=False)] = None,
    preset: Preset = None,
    config_dir: ConfigDirs = None,
    show_config: ShowConfig = False,
) -> None:
    """Score captions: tag coverage (overall and per category), length, distinct-n; with references BLEU, ROUGE-L, METEOR and embedding similarity."""
    source, rest = split_input(predictions, overrides)
    cfg = compose_or_show(
        "caption_inference", rest, preset, config_dir, show_config,
        updates={
            "evaluation.predictions": source, "evaluation.tags_column": tags_column,
            "evaluation.caption_column": caption_column, "evaluation.references": references,
            "evaluation.reference_column": reference_column, "evaluation.taxonomy_path": taxonomy,
            "evaluation.output": str(output) if output else None,
        },
    )
    from tagtune.caption.evaluate import evaluate as run

    res = run(cfg)
    _render_metrics(res.metrics)
    out_console().print(f"metrics written to {res.output}")


def _render_metrics(m: dict[str, Any]) -> None:
    from rich.table import Table

    console = out_console()
    table = Table(title=f"Caption metrics: {m['predictions']} ({m['rows']} captions)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    cov = m["coverage"]
    table.add_row("tag coverage (mean per caption)", _fmt(cov["mean"]))
    table.add_row("tag coverage (all tags)", _fmt(cov["micro"]))
    table.add_row("captions mentioning every tag", _fmt(cov["full"]))
    length = m["length_words"]
    table.add_row("length, words (mean ± std)", f"{length['mean']:.1f} ± {length['std']:.1f}")
    table.add_row("length, words (min / median / max)", f"{length['min']} / {length['median']:.0f} / {length['max']}")
    if length["empty"]:
        table.add_row("empty captions", str(length["empty"]))
    for name, value in m["distinct"].items():
        table.add_row(name.replace("_", "-"), _fmt(value))
    ref = m.get("references")
    if ref:
        table.add_row(f"references ({ref['pairs']} pairs, by {ref['matched_by']})", "")
        for key, label in (("bleu", "BLEU"), ("rouge_l", "ROUGE-L"), ("meteor", "METEOR"), ("embedding_similarity", "embedding similarity")):
            if key in ref:
                table.add_row(f"  {label}", _fmt(ref[key], 2 if key == "bleu" else 3))
    else:
        table.add_row("reference metrics", "no references (use --references or --reference-column)")
    console.print(table)
    cats = Table(title="Tag coverage per category")
    cats.add_column("category")
    cats.add_column("coverage", justify="right")
    cats.add_column("tags", justify="right")
    for cat, row in cov["per_category"].items():
        cats.add_row(cat, _fmt(row["coverage"]), str(row["tags"]))
    console.print(cats)
