"""Test-wide settings: offline Hugging Face, a throw-away tiny-model cache, shared helpers.

Environment variables are set at import time so that subprocesses started by end-to-end tests
(``python -m tagtune ...``) inherit them. The tiny models are built once per test session into
``TAGTUNE_CACHE_DIR`` (set ``TAGTUNE_TEST_CACHE_DIR`` to keep them between sessions).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: extra threads only add spin-wait contention
os.environ["TAGTUNE_CACHE_DIR"] = os.environ.get("TAGTUNE_TEST_CACHE_DIR") or tempfile.mkdtemp(prefix="tagtune-test-cache-")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "conceptcaps"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_shared = pytest.mark.skip(reason=f"shared reference data not found at {SHARED_DATA}")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "shared_data" in item.keywords and not SHARED_DATA.is_dir():
            item.add_marker(skip_shared)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ConceptCaps reference data folder (tests using it are skipped when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_tagtune(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (``python -m tagtune ...``) and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tagtune", *map(str, args)],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def tagtune_cli():
    """Fixture form of :func:`run_tagtune`."""
    return run_tagtune
