"""`make demo` timing: the demo pipeline idle and next to a competing CPU-bound process, cold and warm.

``tagtune pipeline run --preset demo -o DIR`` into a fresh folder each time, in a fresh process.
*Cold*: numba's on-disk cache is empty (``NUMBA_CACHE_DIR`` points at a new folder), as on a fresh
clone, so librosa's beat tracking compiles its kernels once; *warm*: the same cache, already filled.
*Loaded*: one ``python -c "while True: pass"`` process runs throughout. The target: loaded within
1.5x of idle.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAGTUNE = [sys.executable, "-m", "tagtune"]


def _run(out: Path, numba_cache: Path) -> float:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.run([*TAGTUNE, "pipeline", "run", "--preset", "demo", "-o", str(out)], env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"demo failed: {proc.stderr[-2000:]}")
    return seconds


def _with_load(fn):  # noqa: ANN001, ANN202
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        return fn()
    finally:
        hog.kill()
        hog.wait()


def run(quick: bool = False) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmpdir:
        tmp = Path(tmpdir)
        figures: dict[str, float] = {}
        cold_idle, cold_loaded, warm = tmp / "numba-a", tmp / "numba-b", tmp / "numba-a"
        figures["idle, cold"] = _run(tmp / "d1", cold_idle)
        figures["idle, warm"] = _run(tmp / "d2", warm)
        if not quick:
            figures["loaded, cold"] = _with_load(lambda: _run(tmp / "d3", cold_loaded))
            figures["loaded, warm"] = _with_load(lambda: _run(tmp / "d4", warm))
        started = time.perf_counter()
        subprocess.run([*TAGTUNE, "pipeline", "run", "--preset", "demo", "-o", str(tmp / "d2")], capture_output=True,
                       check=True, env={**os.environ, "NUMBA_CACHE_DIR": str(warm)})
        figures["rerun (every stage already complete)"] = time.perf_counter() - started
    lines = ["## `make demo` (the demo pipeline)", "",
             "`tagtune pipeline run --preset demo -o DIR` (100 tag sets: the demo VAE trained on the packaged data, "
             "template captions, 4 s synth clips, tempo verification, the dataset folder), each in a fresh process "
             "and folder, wall time including start-up. Cold: an empty numba cache, as on a fresh clone (librosa compiles "
             "its beat-tracking kernels once, cached afterwards); loaded: one CPU-bound `while True: pass` process "
             f"competing on the {os.cpu_count()}-core machine. `python benchmarks/bench_demo.py`.", "",
             "| run | seconds |", "| --- | --- |"]
    lines += [f"| {name} | {sec:.1f} |" for name, sec in figures.items()]
    if "loaded, warm" in figures:
        lines += ["", f"Loaded / idle: {figures['loaded, warm'] / figures['idle, warm']:.2f}x warm, "
                      f"{figures['loaded, cold'] / figures['idle, cold']:.2f}x cold (target: within 1.5x)."]
    return "\n".join(lines + [""])


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
