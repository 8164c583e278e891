"""Fixtures of the executor tests: a hard time limit per test (pytest-timeout), a run folder with its canary, the
stand-in SLURM commands, one embedded Ray cluster per session, and the toy targets on PYTHONPATH
(workers of every executor import them by name)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tagtune.config.typed import convert
from tagtune.executors import plan_shards, write_canary
from tagtune.executors.config import ExecutorConfig

TOYS = Path(__file__).resolve().parent / "toys"
REPO = Path(__file__).resolve().parents[2]
if str(TOYS) not in sys.path:
    sys.path.insert(0, str(TOYS))

LIMIT_S = 120  # no executor test may hang: a scheduler waiting forever fails the test instead
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A hard time limit (pytest-timeout) on every test of this folder that does not set its own."""
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LIMIT_S))


@pytest.fixture(autouse=True)
def _toys_on_pythonpath(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TOYS), os.environ.get("PYTHONPATH")])))


def load_executor_config(option: str, **updates: Any) -> ExecutorConfig:
    """The typed section of ``config/executor/<option>.yaml`` with dotted keys changed."""
    import yaml

    data = yaml.safe_load((REPO / "config" / "executor" / f"{option}.yaml").read_text())
    for key, value in updates.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return convert(ExecutorConfig, data, "executor")


@pytest.fixture
def executor_config():
    """``executor_config("slurm", **{"slurm.poll_seconds": 0.2})``: a typed executor section."""
    return load_executor_config


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder whose canary the driver wrote (what workers look for)."""
    path = tmp_path / "run"
    write_canary(path)
    return path


@pytest.fixture
def plan(run_dir: Path):
    """``plan(stage, count, **toy_kwargs)``: the shard tasks of a write_ids run under run_dir."""

    def make(stage: str, count: int, config_hash: str = "cfg1", **kwargs: Any):
        return plan_shards(stage, count, "shard_toys:write_ids", {"out_dir": str(run_dir / stage), **kwargs},
                           run_dir=run_dir, marker_dir=run_dir / ".tagtune" / "markers" / stage,
                           config_hash=config_hash, input_hash="in1")

    return make


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The stand-in SLURM commands first on PATH; every job they started is stopped at the end."""
    from helpers.slurm_standin import standin_env, stop_all

    state = tmp_path / "slurm-state"
    for key, value in standin_env(state).items():
        monkeypatch.setenv(key, value)
    try:
        yield state
    finally:
        stop_all(state)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """One embedded Ray cluster for the session's Ray tests (starting one costs seconds and a GB).

    Module-scoped because only test_executors_ray.py uses it: it starts once per session all
    the same, and stops when that module ends instead of idling through the rest of the suite."""
    ray = pytest.importorskip("ray")
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOYS), previous]))  # inherited by Ray's workers
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous
