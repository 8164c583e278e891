"""Tags stage: VAE training time (our `vae train` path vs a plain batch-32 Lightning loop),
sampling rate, and the quality bar on held-out ConceptCaps tag sets.

Training data: the shared ConceptCaps file (~1.5k sets) when present, else the packaged demo
data repeated to ~1.5k sets. Quality (full run only, needs the shared data): three seeded 80/20
splits of the file; the default settings trained on the 80% and 5000 samples compared with the
20%, next to the data's own ceiling (the 80% itself against the 20%), sampling every tag
independently from its training frequency, the reference recipe (`--preset reference`) and the
reference system's published samples.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "conceptcaps"
KEYS = ["jsd", "cooccurrence_r", "set_size_w1", "mean_set_size", "precision", "recall", "coverage", "density",
        "mmd2", "novelty", "diversity"]
TARGETS = {"jsd": "<= 0.035", "cooccurrence_r": ">= 0.75", "set_size_w1": "<= 0.30", "precision": ">= 0.85",
           "coverage": ">= 0.80", "mmd2": "<= 2.0e-3", "novelty": ">= 0.5", "diversity": ">= 0.9"}


def _quiet() -> Any:
    return contextlib.redirect_stderr(io.StringIO())


def _training_file(tmp: Path) -> tuple[list[str], str]:
    """Overrides pointing at ~1.5k tag sets, and a description."""
    if (SHARED / "musiccaps_tags_captions.csv").is_file():
        return ([f"data.path={SHARED / 'musiccaps_tags_captions.csv'}", f"data.taxonomy_path={SHARED / 'taxonomy.json'}",
                 "data.tags_column=aspect_list"], "ConceptCaps musiccaps_tags_captions.csv (1512 sets, 200 tags)")
    from tagtune.files.readers import resolve_path

    lines = resolve_path("pkg:demo_tags.jsonl").read_text(encoding="utf-8").splitlines()
    path = tmp / "demo_x4.jsonl"
    path.write_text("\n".join(lines * 4) + "\n", encoding="utf-8")
    return [f"data.path={path}"], f"packaged demo data x4 ({4 * len(lines)} sets, 64 tags)"


def _compose(command: Any, overrides: list[str], preset: str | None = None, **updates: Any) -> Any:
    """The typed config of a `vae` command (`vae train` without its progress bar)."""
    from tagtune.config.commands import compose_command
    from tagtune.vae.config import COMMANDS, TRAIN

    quiet = ["callbacks.progress_bar.enabled=false"] if command is TRAIN else []
    return compose_command(command, COMMANDS, [*quiet, *overrides], preset=preset, updates=updates)


def _plain_lightning_seconds(cfg: Any, epochs: int, threads: int) -> float:
    """A straightforward Lightning loop over the same model: DataLoader, batch 32, default trainer knobs."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from tagtune.models.training import quiet_lightning
    from tagtune.vae.data import load_vae_data
    from tagtune.vae.lightning_module import VAEModule
    from tagtune.vae.train import _architecture

    quiet_lightning()
    torch.set_num_threads(threads)
    data = load_vae_data(cfg.data)
    L.seed_everything(cfg.seed, verbose=False)
    m, loss = cfg.model, cfg.loss
    module = VAEModule(
        _architecture(m, data), beta=m.beta, learning_rate=m.learning_rate, weight_decay=m.weight_decay,
        bce_weight=loss.bce_weight, kld_weight=loss.kld_weight, size_weight=loss.size_weight, free_bits=loss.free_bits,
        kl_warmup_epochs=loss.kl_warmup_epochs,
    )
    train_dl = DataLoader(TensorDataset(torch.as_tensor(data.train)), batch_size=32, shuffle=True, drop_last=len(data.train) % 32 == 1)
    val_dl = DataLoader(TensorDataset(torch.as_tensor(data.val)), batch_size=32)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, default_root_dir=tmp, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        start = time.perf_counter()
        trainer.fit(module, train_dl, val_dl)
        return time.perf_counter() - start


def _timing(quick: bool, tmp: Path) -> list[str]:
    from tagtune.vae.config import SAMPLE, TRAIN
    from tagtune.vae.sample import sample
    from tagtune.vae.train import train

    overrides, what = _training_file(tmp)
    extra = ["trainer.max_epochs=15"] if quick else []
    model = tmp / "timing_model"
    cfg = _compose(TRAIN, [*overrides, *extra], **{"train.output": str(model)})
    with _quiet():
        ours = train(cfg).metrics
    epochs = ours["epochs"]
    threads = min(2, os.cpu_count() or 1)  # what torch picks by itself on this 2-core machine
    with _quiet():
        plain = _plain_lightning_seconds(cfg, epochs, threads)
        plain_one = _plain_lightning_seconds(cfg, epochs, 1) if threads > 1 else plain
    rows = []
    for mode in ("sized", "bernoulli", "threshold"):
        out = tmp / f"timing_{mode}.jsonl"
        scfg = _compose(SAMPLE, [f"sample.mode={mode}"], **{
            "sample.model": str(model), "sample.num_samples": 5000, "sample.output": str(out)})
        best = float("inf")
        for _ in range(1 if quick else 3):
            with _quiet():
                r = sample(scfg)
            best = min(best, r.seconds)
        rows.append((mode, best, 5000 / best))
    d = ours["dataset"]
    lines = [
        "### Training time",
        "",
        f"Data: {what}; {d['train']} training / {d['val']} validation sets; {epochs} epochs "
        f"({'early stopping, default settings' if not quick else 'quick run'}), the same epoch count for both loops.",
        "",
        "| loop | seconds | sets/s | vs ours |",
        "| --- | --- | --- | --- |",
        f"| `tagtune vae train` path (batch {cfg.data.batch_size}, in-memory batches, 1 thread, checkpoints + early stopping + CSV log) "
        f"| {ours['fit_seconds']:.1f} | {epochs * d['train'] / ours['fit_seconds']:.0f} | 1.00x |",
        f"| plain Lightning loop (DataLoader batch 32, {threads} thread{'s' if threads > 1 else ''}, no checkpoints/logger) "
        f"| {plain:.1f} | {epochs * d['train'] / plain:.0f} | {plain / ours['fit_seconds']:.2f}x |",
        f"| plain Lightning loop, 1 thread (isolates the batch/loader effect from the thread effect) "
        f"| {plain_one:.1f} | {epochs * d['train'] / plain_one:.0f} | {plain_one / ours['fit_seconds']:.2f}x |",
        "",
        "### Sampling rate (5000 sets, written to JSONL, best of "
        f"{1 if quick else 3})",
        "",
        "| mode | seconds | sets/s |",
        "| --- | --- | --- |",
        *[f"| {mode} | {sec:.2f} | {rate:,.0f} |" for mode, sec, rate in rows],
        "",
    ]
    return lines


def _split_files(tmp: Path, seed: int) -> tuple[Path, Path]:
    with open(SHARED / "musiccaps_tags_captions.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    cut = round(0.2 * len(rows))
    out = []
    for name, idx in (("train", order[cut:]), ("heldout", order[:cut])):
        path = tmp / f"split{seed}_{name}.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows[i] for i in idx)
        out.append(path)
    return out[0], out[1]


def _quality(tmp: Path, seeds: tuple[int, ...]) -> list[str]:
    import numpy as np

    from tagtune.records.tagsets import load_tag_dataset
    from tagtune.records.taxonomy import Taxonomy
    from tagtune.vae import metrics as M
    from tagtune.vae.config import SAMPLE, TRAIN
    from tagtune.vae.sample import sample
    from tagtune.vae.train import train

    tax = Taxonomy.load(SHARED / "taxonomy.json")

    def matrix(path: Path) -> Any:
        return tax.encode_many(load_tag_dataset({"path": str(path), "tags_column": "aspect_list"}, tax).tag_sets())

    def metrics(gen: Any, ref: Any, tr: Any) -> dict[str, float]:
        return M.all_metrics(gen, ref, tr, k=3, subsample=2000, repeats=5, seed=0)

    published = matrix(SHARED / "seed_vae_samples_validation.csv")
    systems: dict[str, list[dict[str, float]]] = {}
    seconds: list[float] = []
    for seed in seeds:
        train_csv, held_csv = _split_files(tmp, seed)
        tr, ho = matrix(train_csv), matrix(held_csv)
        base = [f"data.path={train_csv}", f"data.taxonomy_path={SHARED / 'taxonomy.json'}", "data.tags_column=aspect_list"]
        for name, preset in (("ours (default settings)", None), ("reference recipe (--preset reference)", "reference")):
            model = tmp / f"q{seed}_{preset or 'default'}"
            # training keeps the config's own seed; sampling runs at seed 0
            cfg = _compose(TRAIN, base, preset, **{"train.output": str(model)})
            scfg = _compose(SAMPLE, [], preset, **{"sample.model": str(model), "sample.num_samples": 5000,
                                                  "sample.output": str(model / "s.jsonl"), "seed": 0})
            with _quiet():
                r = train(cfg)
                sample(scfg)
            if preset is None:
                seconds.append(r.metrics["fit_seconds"])
            gen = _with_empty(model / "s.jsonl", tax)
            systems.setdefault(name, []).append(metrics(gen, ho, tr))
        rng = np.random.default_rng(seed)
        indep = (rng.random((5000, len(tax))) < tr.mean(axis=0)).astype(np.float32)
        systems.setdefault("independent tags at training frequencies", []).append(metrics(indep, ho, tr))
        systems.setdefault("ceiling: the training 80% itself", []).append(metrics(tr, ho, tr))
        systems.setdefault("reference system's published samples (seed_vae_samples_validation)", []).append(metrics(published, ho, tr))

    def cell(vals: list[float], key: str) -> str:
        mean = statistics.mean(vals)
        spread = (max(vals) - min(vals)) / 2
        fmt = (lambda v: f"{v * 1e3:.2f}e-3") if key == "mmd2" else (lambda v: f"{v:.3f}")
        return f"{fmt(mean)} ± {fmt(spread)}" if len(vals) > 1 else fmt(mean)

    cols = [k for k in KEYS if k != "recall"]
    lines = [
        "### Quality on held-out ConceptCaps tag sets",
        "",
        f"Three seeded 80/20 splits (seeds {', '.join(map(str, seeds))}) of musiccaps_tags_captions.csv: train on the 80% "
        "(1210 sets), 5000 samples at `--seed 0`, compared with the 20% (302 sets). Mean ± half-range over the splits. "
        "k-NN metrics: k=3, Jaccard distance, equal-size subsamples (302 each), averaged over 5 draws. "
        f"Default training took {statistics.mean(seconds):.1f} s on average (fit only).",
        "",
        "| system | " + " | ".join(cols) + " |",
        "| --- | " + " | ".join("---" for _ in cols) + " |",
        "| **target** | " + " | ".join(TARGETS.get(k, "") for k in cols) + " |",
    ]
    for name, runs in systems.items():
        lines.append(f"| {name} | " + " | ".join(cell([r[k] for r in runs], k) for k in cols) + " |")
    ours = systems["ours (default settings)"]
    ratios = []
    for key, better in (("precision", "up"), ("coverage", "up"), ("cooccurrence_r", "up"), ("set_size_w1", "down"), ("mmd2", "down")):
        a = statistics.mean(r[key] for r in ours)
        b = statistics.mean(r[key] for r in systems["reference system's published samples (seed_vae_samples_validation)"])
        ratios.append(f"{key} {a / b:.2f}x" if better == "up" else f"{key} {b / a:.1f}x lower")
    lines += ["", "Ours vs the published reference samples: " + ", ".join(ratios) + ".", ""]
    return lines


def _with_empty(path: Path, tax: Any) -> Any:
    """Generated sets including empty ones (the threshold recipe writes `"tags": []` lines)."""
    import json

    return tax.encode_many([json.loads(line)["tags"] for line in path.read_text(encoding="utf-8").splitlines()])


def run(quick: bool = False) -> str:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="bench-vae-") as tmpdir:
        tmp = Path(tmpdir)
        lines = ["## Tags stage (beta-VAE)", ""]
        lines += _timing(quick, tmp)
        if not quick and (SHARED / "musiccaps_tags_captions.csv").is_file():
            lines += _quality(tmp, (0, 1, 2))
        elif not quick:
            lines += ["Quality: skipped (shared ConceptCaps data not found).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv))
