"""``tagtune vae evaluate``: compare sampled tag sets with real ones.

Both sides are read with the shared tag-set reader (any supported file type and tag-column
layout) against one taxonomy: ``evaluation.taxonomy_path``, else the model directory's
(``evaluation.model_dir``), else ``data.taxonomy_path``. The metrics are those of
:mod:`tagtune.vae.metrics`; the result is written as JSON and, unless switched off, as PNG
plots (see :mod:`tagtune.vae.plots`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError
from tagtune.taxonomy import Taxonomy

# Metric, direction and a short definition: the table, the JSON and docs/vae.md use these.
METRICS: list[tuple[str, str, str]] = [
    ("jsd", "lower", "Jensen-Shannon divergence (base 2) of the tag distributions"),
    ("cooccurrence_r", "higher", "Pearson r of pairwise co-occurrence rates"),
    ("set_size_w1", "lower", "Wasserstein-1 distance of set sizes"),
    ("mean_set_size", "", "mean tags per generated set"),
    ("reference_mean_set_size", "", "mean tags per reference set"),
    ("empty_share", "lower", "share of empty generated sets"),
    ("diversity", "higher", "unique generated sets / generated sets"),
    ("novelty", "higher", "share of generated sets not in TRAIN"),
    ("precision", "higher", "k-NN precision (Kynkaanniemi 2019), Jaccard distance"),
    ("recall", "higher", "k-NN recall (Kynkaanniemi 2019), Jaccard distance"),
    ("density", "higher", "density (Naeem 2020), ~1 for matching distributions"),
    ("coverage", "higher", "coverage (Naeem 2020): real modes reached"),
    ("mmd2", "lower", "squared MMD, Tanimoto kernel (unbiased)"),
]


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    json_path: Path
    plots: list[Path] = field(default_factory=list)
    report: list[str] = field(default_factory=list)


def _taxonomy(ev: Any, cfg: Any) -> tuple[Taxonomy, str]:
    from tagtune.vae.modeldir import read_taxonomy

    if ev.get("taxonomy_path"):
        return Taxonomy.load(ev.taxonomy_path), str(ev.taxonomy_path)
    if ev.get("model_dir"):
        return read_taxonomy(ev.model_dir), f"{ev.model_dir}/taxonomy.json"
    return Taxonomy.load(cfg.data.taxonomy_path), str(cfg.data.taxonomy_path)


def _read(path: Any, taxonomy: Taxonomy, column: str | None, keep_empty: bool = False) -> tuple[Any, list[str]]:
    from tagtune.tagsets import load_tag_dataset

    ds = load_tag_dataset({"path": str(path), "aspect_column": column or None}, taxonomy=taxonomy)
    matrix = taxonomy.encode_many(ds.tag_sets())
    # The reader drops rows without a known tag. An empty *generated* set is a real outcome
    # (threshold sampling produces many), so on that side they are counted back in as empty sets.
    if keep_empty and ds.dropped_rows:
        import numpy as np

        matrix = np.concatenate([matrix, np.zeros((ds.dropped_rows, len(taxonomy)), dtype=matrix.dtype)])
    return matrix, ds.report()


def evaluate(cfg: Any) -> EvaluationResult:
    """Run every metric for ``evaluation.samples`` against ``evaluation.reference``.

    Uses ``evaluation.train`` for novelty, ``evaluation.tags_column`` for both sides (auto-detected
    when null), ``evaluation.k`` / ``subsample`` / ``repeats`` / ``seed`` for the k-NN metrics,
    writes ``evaluation.output`` (JSON) and, with ``evaluation.plots``, PNGs to ``evaluation.plots_dir``.
    """
    from tagtune.resumable import atomic_write_json
    from tagtune.vae import metrics as M

    ev = cfg.evaluation
    if not ev.get("samples"):
        raise ConfigError("no samples to evaluate", hint="pass SAMPLES (a file written by `tagtune vae sample`)")
    if not ev.get("reference"):
        raise ConfigError("no reference set", hint="pass --reference REAL (a file of real tag sets)")
    taxonomy, tax_source = _taxonomy(ev, cfg)
    column = ev.get("tags_column")
    gen, gen_report = _read(ev.samples, taxonomy, column, keep_empty=True)
    ref, ref_report = _read(ev.reference, taxonomy, column)
    train = None
    train_report: list[str] = []
    if ev.get("train"):
        train, train_report = _read(ev.train, taxonomy, column)
    k = int(ev.k)
    if min(len(gen), len(ref)) <= k:
        raise ConfigError(
            f"need more than k={k} sets on each side for the k-NN metrics (got {len(gen)} generated, {len(ref)} reference)",
            hint="sample more sets or lower evaluation.k",
        )
    slices: dict[str, slice] = {}
    start = 0
    for cat, tags in taxonomy.categories.items():
        slices[cat] = slice(start, start + len(tags))
        start += len(tags)
    metrics = M.all_metrics(
        gen, ref, train, k=k, subsample=ev.get("subsample"), repeats=int(ev.repeats),
        seed=int(ev.seed), category_slices=slices,
    )
    metrics["taxonomy"] = tax_source
    metrics["files"] = {"samples": str(ev.samples), "reference": str(ev.reference), "train": str(ev.train) if ev.get("train") else None}
    out = Path(ev.output).expanduser() if ev.get("output") else Path(str(ev.samples) + ".metrics.json")
    json_path = atomic_write_json(out, metrics)
    plots: list[Path] = []
    if ev.get("plots") and ev.get("plots_dir"):
        from tagtune.vae.plots import write_plots

        plots = write_plots(Path(ev.plots_dir).expanduser(), gen, ref, taxonomy)
    report = [f"samples: {line}" for line in gen_report] + [f"reference: {line}" for line in ref_report]
    report += [f"train: {line}" for line in train_report]
    return EvaluationResult(metrics, json_path, plots, report)
