"""Test-wide settings: offline Hugging Face, a throw-away tiny-model cache, shared helpers.

Environment variables are set at import time so that subprocesses started by end-to-end tests
(``python -m tagtune ...``) inherit them. The tiny models are built once per test session into
``TAGTUNE_CACHE_DIR`` (set ``TAGTUNE_TEST_CACHE_DIR`` to keep them between sessions).

The shared helpers live in ``tests/helpers`` (CLI runners, the signal harness, the JSONL reader);
pytest's ``--import-mode=importlib`` does not put ``tests/`` on ``sys.path``, so it is added here
and every test module can ``from helpers import ...``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from helpers import run_cli, run_tagtune  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: extra threads only add spin-wait contention
os.environ["TAGTUNE_CACHE_DIR"] = os.environ.get("TAGTUNE_TEST_CACHE_DIR") or tempfile.mkdtemp(prefix="tagtune-test-cache-")

REPO = TESTS.parent
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


@pytest.fixture
def tagtune_cli():
    """Fixture form of :func:`helpers.run_tagtune` (the CLI in a subprocess)."""
    return run_tagtune


@pytest.fixture
def tagtune_main():
    """Fixture form of :func:`helpers.run_cli` (the CLI in this process): ``(code, out, err)``."""
    return run_cli


@pytest.fixture(autouse=True)
def _work_in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own scratch directory, so a command's default outputs
    (``outputs/<task>/<time>/``) never land in the repository."""
    monkeypatch.chdir(tmp_path)
