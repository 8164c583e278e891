"""CLI start-up: `tagtune --help` and `tagtune config show` against `python -c pass`."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def _median_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(quick: bool = False) -> str:
    repeats = 3 if quick else 7
    py = [sys.executable]
    base = _median_seconds([*py, "-c", "pass"], repeats)
    rows = [
        ("python -c pass", base),
        ("tagtune --help", _median_seconds([*py, "-m", "tagtune", "--help"], repeats)),
        ("tagtune vae --help", _median_seconds([*py, "-m", "tagtune", "vae", "--help"], repeats)),
        ("tagtune config list", _median_seconds([*py, "-m", "tagtune", "config", "list"], repeats)),
        ("tagtune config show vae_training", _median_seconds([*py, "-m", "tagtune", "config", "show", "vae_training"], repeats)),
        ("python -c 'import torch'", _median_seconds([*py, "-c", "import torch"], repeats)),
    ]
    lines = [
        "## CLI start-up",
        "",
        f"Median of {repeats} runs of a fresh process. Target: `tagtune --help` <= 0.5 s and no heavy imports "
        "(a test asserts torch, transformers, lightning and peft stay unloaded).",
        "",
        "| command | seconds | vs `python -c pass` |",
        "| --- | --- | --- |",
    ]
    lines += [f"| `{name}` | {sec:.3f} | {sec / base:.1f}x |" for name, sec in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
