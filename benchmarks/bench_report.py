"""`tagtune dataset report` on a 20k-row dataset: build time and page size.

A synthetic dataset folder in the pipeline's layout: 20,000 rows (70/15/15 splits) over a taxonomy
(the packaged 64-tag one, and a 200-tag one the size of ConceptCaps'), with verify provenance,
realised tags, 500 counterfactual pairs and measured loudness/BPM/key. The rows share eight short
silent clips per split (the page links clips, it does not read them; only the sampled ones are
checked to exist). Targets: the page built in under a minute and under 5 MB without copied audio.

    python benchmarks/bench_report.py            # 20k rows
    python benchmarks/bench_report.py --quick    # 2k rows, a smoke run
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}
TARGET_SECONDS, TARGET_MB = 60.0, 5.0


def _taxonomy(size: int | None) -> Any:
    """The packaged taxonomy (None), or one of ``size`` tags over four categories."""
    from tagtune.records.taxonomy import Taxonomy

    if size is None:
        return Taxonomy.load("pkg:taxonomy.yaml")
    cats = {"genre": 60, "mood": 50, "instrument": 70, "tempo": size - 180}
    return Taxonomy({c: [f"{c} {i:03d}" for i in range(n)] for c, n in cats.items()})


def _row(i: int, split: str, tax: Any, rng: random.Random) -> dict[str, Any]:
    tags = tax.sort(rng.sample(tax.tags, rng.randint(3, 8)))
    judged = [t for t in tags if tax.category_of[t] in ("tempo", "instrument")]
    realised = [t for t in judged if rng.random() < 0.8]
    pair = i // 2 if i < 1000 else None  # 500 pairs: the first 1000 rows
    if pair is not None and i % 2:
        tags = [t for t in tags if t != tax.tags[pair % len(tax)]] + [tax.tags[pair % len(tax)]]
    return {
        "file_name": f"audio/shared-{i % 8}.wav", "id": f"r{i:06d}", "tags": tags, **tax.by_category(tags),
        "caption": f"A piece with {', '.join(tags)}.", "duration": 0.25, "sample_rate": 16000,
        "realised_tags": realised, "realisation": len(realised) / len(judged) if judged else None,
        "pair_id": f"p{pair:05d}" if pair is not None else None, "concept": tax.tags[pair % len(tax)] if pair is not None else None,
        "edit": ("add" if i % 2 else "base") if pair is not None else None,
        "bpm": rng.uniform(60, 180), "bpm_confidence": rng.random(), "loudness_lufs": rng.uniform(-30, -8),
        "key": rng.choice(["C major", "A minor", "G major", "E minor"]),
        "provenance": {"tags": {"model": "vae", "fingerprint": "f00d", "seed": 42},
                       "caption": {"model": "meta-llama/Llama-3.1-8B-Instruct", "revision": "0e9e39f2", "seed": i},
                       "audio": {"model": "facebook/musicgen-small", "revision": "abc123", "seed": i},
                       "verify": {"unjudged_tags": [t for t in tags if t not in judged], "missed_tags": []}},
    }


def make_dataset(root: Path, rows: int, tags: int | None) -> Path:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    import soundfile as sf

    ds = root / "dataset"
    tax = _taxonomy(tags)
    rng = random.Random(0)
    start = 0
    for split, share in SPLITS.items():
        n = round(rows * share)
        (ds / split / "audio").mkdir(parents=True)
        for k in range(8):
            sf.write(ds / split / "audio" / f"shared-{k}.wav", np.zeros(4000, dtype="float32"), 16000, subtype="PCM_16")
        batch = [_row(i, split, tax, rng) for i in range(start, start + n)]
        pq.write_table(pa.Table.from_pylist(batch), ds / split / "metadata.parquet")
        start += n
    (ds / "provenance.json").write_text(json.dumps({
        "tagtune_version": "bench", "seed": 42, "num_items": rows, "taxonomy": tax.to_dict(),
        "declared_license": "cc-by-nc-4.0", "inherited_license": "cc-by-nc-4.0", "dataset": {"name": "bench"},
    }), encoding="utf-8")
    return ds


def run(quick: bool = False) -> str:
    from tagtune.pipeline.report_page import write_report

    rows = 2000 if quick else 20000
    results = []
    with tempfile.TemporaryDirectory(prefix="tagtune-bench-report-") as tmp:
        for tags in (None, 200):
            ds = make_dataset(Path(tmp) / f"t{tags}", rows, tags)
            start = time.perf_counter()
            result = write_report(ds, Path(tmp) / f"t{tags}.html", per_concept=4)
            seconds = time.perf_counter() - start
            results.append((len(_taxonomy(tags)), seconds, result.size_bytes / 1e6, result.shown, result.concepts))
    lines = ["## Dataset report: build time and page size", "",
             f"`tagtune dataset report` of a synthetic {rows:,}-row dataset (verify provenance, 500 counterfactual "
             f"pairs, loudness/BPM/key), `--per-concept 4`, no audio copied. Targets: under {TARGET_SECONDS:.0f} s "
             f"and under {TARGET_MB:.0f} MB.", "",
             "| taxonomy tags | rows | build (s) | page (MB) | clips on the page | gallery tags | targets met |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {t} | {rows:,} | {s:.1f} | {mb:.2f} | {shown} | {c} | "
              f"{'yes' if s < TARGET_SECONDS and mb < TARGET_MB else 'NO'} |" for t, s, mb, shown, c in results]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
