"""Dataset export: peak memory of the streaming Parquet writer for 200 vs 2000 clips, and throughput.

A dataset folder of N one-second 16 kHz clips (white noise, PCM16) is assembled with the real
`build_dataset`, then `tagtune dataset export --format parquet` runs in a fresh process whose peak
RSS (`ru_maxrss` of the child) is read back. Memory must not grow with the dataset (target: 2000
clips within 1.3x of 200); the same is shown for the WebDataset export.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_dataset(root: Path, n: int) -> Path:
    """A pipeline-shaped folder: tta/ (clips + metadata) -> dataset/ through the real builder."""
    import numpy as np
    import soundfile as sf

    from tagtune.config.compose import compose
    from tagtune.pipeline.dataset import build_dataset
    from tagtune.records.taxonomy import Taxonomy

    tta = root / "tta"
    (tta / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    tax = Taxonomy.load("pkg:taxonomy.yaml")
    lines = []
    for i in range(n):
        name = f"audio/c{i:06d}.wav"
        sf.write(tta / name, (rng.standard_normal(16000) * 0.1).astype("float32"), 16000, subtype="PCM_16")
        tags = [tax.tags[(i * 7 + k) % len(tax)] for k in range(4)]
        lines.append({"file_name": name, "id": f"c{i:06d}", "tags": tags, "caption": f"a piece with {', '.join(tags)}",
                      "duration": 1.0, "sample_rate": 16000})
    (tta / "metadata.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    cfg = compose("pipeline")
    build_dataset(tta, root / "dataset", tax, cfg.dataset, {"inputs": {"audio_model": "tiny"}})
    return root / "dataset"


_CHILD = """
import resource, sys, time
from tagtune.pipeline.export import export_dataset
start = time.perf_counter()
export_dataset(sys.argv[1], fmt=sys.argv[3], out_dir=sys.argv[2], shard_bytes=int(sys.argv[4]))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def measure(dataset: Path, out: Path, fmt: str, shard_bytes: int) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one export in a fresh process."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(dataset), str(out), fmt, str(shard_bytes)],
                          capture_output=True, text=True, check=True)
    seconds, kb = done.stdout.split()
    return float(seconds), int(kb) / 1024


def run(quick: bool = False) -> str:
    sizes = (50, 200) if quick else (200, 2000)
    shard = 8 << 20  # small shards, so the larger run writes several of them
    rows = []
    with tempfile.TemporaryDirectory(prefix="tagtune-bench-export-") as tmp:
        for n in sizes:
            ds = make_dataset(Path(tmp) / f"n{n}", n)
            for fmt in ("parquet", "webdataset"):
                seconds, rss = measure(ds, Path(tmp) / f"e{n}-{fmt}", fmt, shard)
                files = sorted((Path(tmp) / f"e{n}-{fmt}").rglob("*.parquet" if fmt == "parquet" else "*.tar"))
                rows.append((fmt, n, seconds, rss, len(files)))
    ratio = {fmt: next(r[3] for r in rows if r[0] == fmt and r[1] == sizes[1]) /
             next(r[3] for r in rows if r[0] == fmt and r[1] == sizes[0]) for fmt in ("parquet", "webdataset")}
    lines = ["## Dataset export: memory and speed", "",
             f"`tagtune dataset export` of a dataset of one-second 16 kHz clips, in a fresh process (peak RSS of "
             f"the child), shards of {shard >> 20} MB. Target: peak RSS for {sizes[1]} clips within 1.3x of "
             f"{sizes[0]} (streaming: one batch of clips in memory).", "",
             "| format | clips | seconds | clips/s | peak RSS (MB) | shards |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {f} | {n} | {s:.2f} | {n / s:.0f} | {r:.0f} | {k} |" for f, n, s, r, k in rows]
    lines += ["", "Peak RSS ratio, " + ", ".join(f"{f}: {v:.2f}x" for f, v in ratio.items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    start = time.perf_counter()
    print(run(quick="--quick" in sys.argv))
    print(f"({time.perf_counter() - start:.0f} s, parent RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")
