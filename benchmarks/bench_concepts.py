"""Concept coverage on the ConceptCaps reference data: balanced sampling and counterfactual pairs.

Seeded 80/20 splits of the shared musiccaps_tags_captions.csv (as in bench_vae.py, with the same
metric code): a model with the default settings trained on the 80%, then

* 5000 plain samples and 5000 balanced to at least 20 sets per tag (seed 0): the smallest tag
  count, the tags below 20, precision / coverage against the held-out 20%, how many sets the
  top-up drew. The 200-tag taxonomy holds a tag the training file never uses ('beatbox'; the
  data only has 'beatboxing'), which plain ``--min-per-tag 20`` refuses by name (as designed),
  so the balanced run is ``--min-per-tag 20 sample.skip_absent=true`` and tag counts are taken
  over the tags the training split holds;
* 1000 counterfactual pairs: precision of the partners (and the bases) against the held-out 20%.

Also draws the tag-frequency plots of docs/concepts.md (plain vs balanced) into docs/img/.
Needs the shared data (skips cleanly without it).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "conceptcaps"
IMG = ROOT / "docs" / "img"
K = 20  # the per-tag quota of the balanced run
BALANCED = f"{K} per trained tag"


def _sample(model: Path, out: Path, *flags: str) -> tuple[float, dict[str, Any] | None]:
    from tagtune.cli import main

    started = time.perf_counter()
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            main(["vae", "sample", "--model", str(model), "-o", str(out), "--seed", "0", *flags])
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"vae sample {' '.join(flags)} failed ({exc.code}): {err.getvalue().strip()[-500:]}") from exc
    seconds = time.perf_counter() - started
    balance = Path(str(out) + ".balance.json")
    return seconds, (json.loads(balance.read_text()) if balance.is_file() else None)


def _trained_tags(model: Path) -> list[str]:
    """The tags the model's training split holds (its metrics.json records the counts)."""
    counts = json.loads((model / "metrics.json").read_text(encoding="utf-8"))["dataset"]["train_tag_counts"]
    return [t for t, n in counts.items() if n > 0]


def _plot(counts: dict[str, Counter], tags: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = sorted(tags, key=lambda t: -counts["plain"][t])
    fig, ax = plt.subplots(figsize=(9, 3.2))
    for name, colour in (("plain", "tab:blue"), (BALANCED, "tab:orange")):
        ax.plot(range(len(order)), [max(counts[name][t], 0.8) for t in order], color=colour, label=name, lw=1.4)
    ax.axhline(K, color="grey", ls="--", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("tags of the training split, most frequent first (plain sampling)")
    ax.set_ylabel("sets holding the tag (of 5000)")
    ax.legend()
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(quick: bool = False, seeds: tuple[int, ...] | None = None) -> str:
    """Measure and return the Markdown section. ``quick``: one split, 15 epochs, no plot (a smoke run)."""
    import numpy as np
    from bench_vae import _quiet, _split_files

    from tagtune.config.compose import compose
    from tagtune.records.tagsets import load_tag_dataset
    from tagtune.records.taxonomy import Taxonomy
    from tagtune.vae import metrics as M
    from tagtune.vae.train import train

    if not (SHARED / "musiccaps_tags_captions.csv").is_file():
        return "## Concept coverage\n\nSkipped: the shared ConceptCaps data was not found.\n"
    tax = Taxonomy.load(SHARED / "taxonomy.json")
    seeds = seeds or ((0,) if quick else (0, 1, 2))

    def matrix(path: Path) -> Any:
        return tax.encode_many(load_tag_dataset({"path": str(path), "tags_column": "aspect_list"}, tax).tag_sets())

    def rows(path: Path) -> list[dict[str, Any]]:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    results: dict[str, list[float]] = {}
    untrained: set[str] = set()  # taxonomy tags some training split lacks

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(float(value))

    with tempfile.TemporaryDirectory(prefix="bench-concepts-") as tmpdir:
        tmp = Path(tmpdir)
        for seed in seeds:
            train_csv, held_csv = _split_files(tmp, seed)
            held, tr = matrix(held_csv), matrix(train_csv)
            model = tmp / f"model{seed}"
            cfg = compose("vae_training", ["callbacks.progress_bar.enabled=false", f"data.path={train_csv}",
                                           f"data.taxonomy_path={SHARED / 'taxonomy.json'}", "data.tags_column=aspect_list"],
                          updates={"train.output": str(model), "seed": 0, **({"trainer.max_epochs": 15} if quick else {})})
            with _quiet():
                train(cfg)
            trained = _trained_tags(model)
            add("trained_tags", len(trained))
            untrained.update(t for t in tax.tags if t not in set(trained))
            counts: dict[str, Counter] = {}
            for name, flags in (("plain", ["-n", "5000"]), (BALANCED, ["-n", "5000", "--min-per-tag", str(K), "sample.skip_absent=true"])):
                out = tmp / f"s{seed}-{len(counts)}.jsonl"
                seconds, balance = _sample(model, out, *flags)
                sets = rows(out)
                counts[name] = Counter(t for r in sets for t in r["tags"])
                gen = tax.encode_many([r["tags"] for r in sets])
                m = M.all_metrics(gen, held, tr, k=3, subsample=2000, repeats=5, seed=0)
                add(f"{name}|precision", m["precision"])
                add(f"{name}|coverage", m["coverage"])
                add(f"{name}|min_count", min(counts[name][t] for t in trained))
                add(f"{name}|below_20", sum(counts[name][t] < K for t in trained))
                add(f"{name}|rows", len(sets))
                add(f"{name}|seconds", seconds)
                if balance:
                    add(f"{name}|topped_up", sum(balance["topped_up"].values()))
                    add(f"{name}|tags_topped_up", len(balance["topped_up"]))
                    add(f"{name}|draws", balance["draws"])
            if seed == seeds[0] and not quick:  # a smoke run leaves the documentation's figure alone
                _plot(counts, trained, IMG / "concepts_min_per_tag.png")
            out = tmp / f"cf{seed}.jsonl"
            seconds, _ = _sample(model, out, "-n", "0", "--counterfactual", "1000")
            pairs = rows(out)
            partners = tax.encode_many([r["tags"] for r in pairs if r["edit"] != "base"])
            bases = tax.encode_many([r["tags"] for r in pairs if r["edit"] == "base"])
            add("pairs|partner_precision", M.all_metrics(partners, held, tr, k=3, subsample=2000, repeats=5, seed=0)["precision"])
            add("pairs|base_precision", M.all_metrics(bases, held, tr, k=3, subsample=2000, repeats=5, seed=0)["precision"])
            add("pairs|seconds", seconds)
            one_apart = all(len(set(a["tags"]) ^ set(b["tags"])) == 1 for a, b in zip(pairs[::2], pairs[1::2], strict=True))
            add("pairs|one_tag_apart", float(one_apart))
            add("pairs|concepts", len({r["concept"] for r in pairs}))
            _ = np  # numpy is used through the metric code

    def cell(key: str, fmt: str = "{:.3f}") -> str:
        vals = results[key]
        mean = statistics.mean(vals)
        return (fmt.format(mean) + (f" ± {fmt.format((max(vals) - min(vals)) / 2)}" if len(vals) > 1 else ""))

    def span(key: str) -> str:  # a count over the splits: one number, or its range
        lo, hi = int(min(results[key])), int(max(results[key]))
        return str(lo) if lo == hi else f"{lo}-{hi}"

    lines = [
        "## Concept coverage (balanced sampling, counterfactual pairs)",
        "",
        f"Seeded 80/20 splits (seeds {', '.join(map(str, seeds))}) of the ConceptCaps tag sets, default settings trained on "
        "the 80% (as in the tags-stage benchmark, same metric code: k=3, Jaccard, 302-set subsamples, 5 draws); "
        "every sampling run at `--seed 0`. Mean ± half-range over the splits. `python benchmarks/bench_concepts.py`."
        + (" **Quick smoke run: one split, 15 epochs; the figures mean little.**" if quick else ""),
        "",
        f"Balanced run: `--min-per-tag {K} sample.skip_absent=true`. The {len(tax)}-tag taxonomy holds tags no training "
        f"split uses ({', '.join(sorted(untrained)) or '-'}; the data says 'beatboxing'), which plain `--min-per-tag {K}` "
        f"refuses by name; `skip_absent` leaves them out and names them. Tag counts are over the "
        f"{span('trained_tags')} tags the training split holds.",
        "",
        f"| 5000 sets | rows | smallest tag count | tags below {K} | precision | coverage | top-up sets | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| **target** | | >= {K} | 0 | >= 0.85 | >= 0.75 | | |",
    ]
    for name in ("plain", BALANCED):
        topped = cell(f"{name}|topped_up", "{:.0f}") if f"{name}|topped_up" in results else "-"
        lines.append(f"| {name} | {cell(f'{name}|rows', '{:.0f}')} | {cell(f'{name}|min_count', '{:.1f}')} | "
                     f"{cell(f'{name}|below_20', '{:.1f}')} | {cell(f'{name}|precision')} | {cell(f'{name}|coverage')} | "
                     f"{topped} | {cell(f'{name}|seconds', '{:.1f}')} |")
    lines += [
        "",
        f"1000 counterfactual pairs (`-n 0 --counterfactual 1000`, every concept the training data holds, "
        f"{span('pairs|concepts')} concepts): partner precision **{cell('pairs|partner_precision')}** "
        f"(target >= 0.85), base precision {cell('pairs|base_precision')}; every pair one tag apart: "
        f"{'yes' if min(results['pairs|one_tag_apart']) == 1.0 else 'NO'}; {cell('pairs|seconds', '{:.1f}')} s.",
        "",
        f"![tag counts, plain vs {K} per tag](img/concepts_min_per_tag.png)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(run(quick="--quick" in sys.argv))
