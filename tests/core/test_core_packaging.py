"""The wheel ships every YAML of config/ and works from an install outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("tagtune-*.whl")
    return whl


def test_wheel_contains_every_config_file_and_the_packaged_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"tagtune/configs/{p.relative_to(REPO / 'config').as_posix()}" for p in (REPO / "config").rglob("*.yaml")}
    assert expected and expected <= names, sorted(expected - names)
    assert "tagtune/resources/taxonomy.yaml" in names
    assert "tagtune/resources/demo_tags.jsonl" in names
    assert not any(n.startswith("config/") for n in names), "config/ must live inside the package"
    assert not any("conceptcaps" in n and n.endswith((".csv", ".json")) for n in names)


@pytest.mark.slow
def test_config_show_works_from_a_wheel_install_outside_the_repo(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=False)
    site = next((env_dir / "lib").glob("python*/site-packages"))
    with zipfile.ZipFile(wheel) as zf:  # install = unpack the pure-Python wheel into site-packages
        zf.extractall(site)
    deps = subprocess.run([sys.executable, "-c", "import omegaconf, hydra, typer, os; print(os.path.dirname(os.path.dirname(typer.__file__)))"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{deps}"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    code = "import sys; from tagtune.cli import main; sys.argv=['tagtune','config','show','tta_inference']; main()"
    proc = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "task_name: tta_inference" in proc.stdout
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import tagtune.config.compose as c; print(c.config_dir())"], cwd=work, env=env, capture_output=True, text=True)
    assert str(site) in where.stdout, where.stdout + where.stderr
