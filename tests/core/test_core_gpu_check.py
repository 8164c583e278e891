"""benchmarks/gpu_check.py --cpu: the device check's own commands run on the CPU with tiny sizes.

The GPU run is the same script on a CUDA machine; this keeps its CPU path working between GPU runs:
every check runs its real ``tagtune`` command and passes, the CUDA-only ones (4-bit QLoRA, the compiled
decoder) say "skipped: needs CUDA", and the table and JSON carry the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CUDA_ONLY = {"caption finetune, 4-bit QLoRA (lora=best)", "tta generate --preset conceptcaps model.compile=true"}


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_gpu_check_runs_its_commands_on_the_cpu(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--cpu", "--work", str(tmp_path / "w"),
                           "--json", str(report)], capture_output=True, text=True, timeout=1150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(report.read_text(encoding="utf-8"))
    rows = {r["check"]: r for r in data["rows"]}
    assert data["device"] == "CPU" and data["size"] == "tiny"
    for name in CUDA_ONLY:
        assert (rows[name]["status"], rows[name]["reason"]) == ("skipped", "needs CUDA")
    ran = [r for name, r in rows.items() if name not in CUDA_ONLY]
    assert len(ran) == 8 and all(r["status"] == "pass" for r in ran), [(r["check"], r["reason"]) for r in ran]
    commands = [r["command"] for r in ran if "command" in r]
    for expected in ("tagtune caption finetune", "tagtune caption infer --adapter", "tagtune tta generate",
                     "tagtune tta verify", "tagtune tta evaluate", "tagtune pipeline run"):
        assert any(c.startswith(expected) for c in commands), expected
    assert any("--preset conceptcaps" in c for c in commands)
    assert any("executor=slurm executor.slurm.cluster=local" in c for c in commands)
    generate = rows["tta generate, batch 2 x 1 s"]["figures"]
    assert generate["clips"] == 2 and generate["real-time factor"] > 0 and generate["clips per GPU-hour"] > 0
    assert rows["caption infer --adapter"]["figures"]["tokens/s"] > 0
    assert rows["pipeline run executor=slurm executor.slurm.cluster=local"]["figures"]["rows"] == 4
    table = report.with_suffix(".md").read_text(encoding="utf-8")
    assert "| tta generate --preset conceptcaps model.compile=true | skipped: needs CUDA |" in table
