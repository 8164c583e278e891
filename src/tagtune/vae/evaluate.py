"""``tagtune vae evaluate``: compare sampled tag sets with real ones.

Both sides are read with the shared tag-set reader (any supported file type and tag-column
layout) against one taxonomy: ``evaluate.taxonomy_path``, else the model directory's
(``evaluate.model``), else ``data.taxonomy_path``. The metrics are those of
:mod:`tagtune.vae.metrics`; the result is written as JSON and, unless switched off, as PNG
plots (see :mod:`tagtune.vae.plots`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tagtune.errors import ConfigError
from tagtune.files.resumable import atomic_write_json
from tagtune.files.runs import check_ours, json_has
from tagtune.models.evalmeta import write_manifest
from tagtune.records.tagsets import load_tag_dataset
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter
from tagtune.vae import metrics as M
from tagtune.vae.config import EvaluateConfig, VaeEvaluate
from tagtune.vae.modeldir import read_taxonomy

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
    ("rule_violations", "lower", "share of generated sets that break the taxonomy's rules (exclusive tags, counts)"),
    ("reference_rule_violations", "", "the same share among the reference sets"),
]


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    json_path: Path
    plots: list[Path] = field(default_factory=list)


def _taxonomy(ev: VaeEvaluate, fallback: str) -> tuple[Taxonomy, str]:
    """``evaluate.taxonomy_path``, else the ``evaluate.model`` directory's, else ``fallback`` (``data.taxonomy_path``)."""
    if ev.taxonomy_path:
        return Taxonomy.load(ev.taxonomy_path), str(ev.taxonomy_path)
    if ev.model:
        return read_taxonomy(ev.model), f"{ev.model}/taxonomy.json"
    return Taxonomy.load(fallback), str(fallback)


def _read(path: str, taxonomy: Taxonomy, column: str | None, keep_empty: bool = False) -> tuple[Any, list[str]]:
    ds = load_tag_dataset({"path": str(path), "tags_column": column or None}, taxonomy=taxonomy)
    matrix = taxonomy.encode_many(ds.tag_sets())
    # The reader drops rows without a known tag. An empty *generated* set is a real outcome
    # (threshold sampling produces many), so on that side they are counted back in as empty sets.
    if keep_empty and ds.stats.dropped:
        matrix = np.concatenate([matrix, np.zeros((ds.stats.dropped, len(taxonomy)), dtype=matrix.dtype)])
    return matrix, ds.report()


def evaluate(cfg: EvaluateConfig, reporter: Reporter = SILENT) -> EvaluationResult:
    """Run every metric for ``evaluate.input`` against ``evaluate.reference``.

    Uses ``evaluate.train`` for novelty, ``evaluate.tags_column`` for both sides (auto-detected
    when null), ``evaluate.k`` / ``subsample`` / ``repeats`` and ``seed`` for the k-NN metrics,
    writes ``evaluate.output`` (JSON) and, with ``evaluate.plots``, PNGs to ``evaluate.plots_dir``.
    """
    ev = cfg.evaluate
    if not ev.input:
        raise ConfigError("no samples to evaluate", key="evaluate.input", hint="pass a file written by `tagtune vae sample`")
    if not ev.reference:
        raise ConfigError("no reference set", key="evaluate.reference", hint="name a file of real tag sets")
    taxonomy, tax_source = _taxonomy(ev, cfg.data.taxonomy_path)
    sides = {"samples": (ev.input, True), "reference": (ev.reference, False), "train": (ev.train, False)}
    data: dict[str, Any] = {}
    for side, (path, keep_empty) in sides.items():
        if path:
            data[side], lines = _read(path, taxonomy, ev.tags_column, keep_empty)
            for line in lines:
                reporter.note(f"{side}: {line}")
    gen, ref = data["samples"], data["reference"]
    if min(len(gen), len(ref)) <= ev.k:
        raise ConfigError(
            f"need more than k={ev.k} sets on each side for the k-NN metrics (got {len(gen)} generated, {len(ref)} reference)",
            key="evaluate.k", hint="sample more sets or lower evaluate.k",
        )
    metrics = M.all_metrics(gen, ref, data.get("train"), k=ev.k, subsample=ev.subsample, repeats=ev.repeats,
                            seed=cfg.seed, category_slices=taxonomy.category_slices)
    gen_rules, ref_rules = M.rule_violations(gen, taxonomy), M.rule_violations(ref, taxonomy)
    metrics["rule_violations"], metrics["reference_rule_violations"] = gen_rules["rate"], ref_rules["rate"]
    metrics["rule_violations_detail"] = {"samples": gen_rules, "reference": ref_rules}
    metrics["taxonomy"] = tax_source
    metrics["files"] = {"samples": str(ev.input), "reference": str(ev.reference), "train": str(ev.train) if ev.train else None}
    out = Path(ev.output).expanduser() if ev.output else Path(str(ev.input) + ".metrics.json")
    check_ours(out, "vae evaluate", json_has("n_generated", "files"))
    json_path = atomic_write_json(out, metrics)
    _manifest(json_path.parent, ev, metrics, taxonomy)
    plots: list[Path] = []
    if ev.plots and ev.plots_dir:
        from tagtune.vae.plots import write_plots

        plots = write_plots(Path(ev.plots_dir).expanduser(), gen, ref, taxonomy)
    return EvaluationResult(metrics, json_path, plots)


def _manifest(folder: Path, ev: VaeEvaluate, metrics: dict[str, Any], taxonomy: Taxonomy) -> None:
    """``eval_manifest.json`` beside the metrics: what each number is, on which sets, with which code."""
    defs = {key: f"{what} ({better} is better)" if better else what for key, better, what in METRICS}
    write_manifest(folder, "tagtune-tags", {"generated": metrics["n_generated"], "reference": metrics["n_reference"]},
                   defs, [{"role": "taxonomy", "id": metrics["taxonomy"], "revision": taxonomy.fingerprint()[:16]}],
                   ["numpy", "scipy"], knn={"k": ev.k, "subsample": metrics.get("knn_subsample"), "repeats": ev.repeats},
                   files=metrics["files"])

