"""The GPU section of docs/benchmarks.md: ``gpu_check.py``'s table where a CUDA GPU is present.

Without a GPU the section says so and how to produce the table; the CPU path of the same check is
part of the test suite (``tests/core/test_core_gpu_check.py``), not of this page: its figures are
costs of tiny models on a CPU, not GPU measurements.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

NO_GPU = """## GPU check (benchmarks/gpu_check.py)

`python benchmarks/gpu_check.py` runs tagtune's own commands on one CUDA GPU, on models built locally with
real architectures and random weights (nothing downloaded): a Llama-architecture LLM with Llama 3's
128,256-token vocabulary, MusicGen with musicgen-small's shapes and half its decoder layers, tagtune's tiny
CLAP. In order: `caption finetune` in 4-bit QLoRA and with a plain LoRA, `caption infer --adapter`,
`tta generate` at batch 16 x 30 s, at `--preset conceptcaps` and with `model.compile=true`, `tta verify`,
`tta evaluate`, and `pipeline run executor=slurm executor.slurm.cluster=local`. It prints one table
(pass/fail, seconds, tokens/s, clips per GPU-hour, real-time factor, peak GPU memory) and writes
`$OUT/gpu_check.json` and `.md`; no check starts after 540 s, so it finishes within 10 minutes on one H100.
`--cpu` runs the same commands on the CPU with tiny sizes (CUDA-only checks say "skipped: needs CUDA");
the test suite runs that path.

**No GPU figures yet.** The sessions that wrote this check had no GPU (the device tool reported the task
as not drawn), so it has run only with `--cpu`: every check passed (2 shared cores, tiny sizes; costs, not
measurements). The 10-minute figure on an H100 is an estimate: rerun `make bench` (this section) on the
first machine with a GPU.
"""


def run(quick: bool = False) -> str:
    import torch

    if not torch.cuda.is_available():
        return NO_GPU
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run([sys.executable, str(HERE / "gpu_check.py")], capture_output=True, text=True,
                              env={**__import__("os").environ, "OUT": out}, timeout=900)
        table = Path(out, "gpu_check.md").read_text() if Path(out, "gpu_check.md").is_file() else proc.stdout[-4000:]
    return (f"## GPU check (benchmarks/gpu_check.py) on {torch.cuda.get_device_name(0)}\n\n{table}\n"
            + ("" if proc.returncode == 0 else f"\nA check failed (exit {proc.returncode}); see the table.\n"))
