"""The example plugin package (examples/tagtune-example-plugins), installed and used through the real CLI.

pip installs it into a temporary folder, never into the environment; every command then runs as
``python -m tagtune`` with that folder on ``PYTHONPATH``, so tagtune finds the four members through
their entry points (``importlib.metadata``) exactly as after ``pip install``. Each member is used
by the command that names it: ``caption infer`` (shout), ``tta generate`` (sine), ``tta verify``
(rms), ``pipeline run`` then ``dataset export --format csv`` (csv); then again by
``package.module:Class`` with only the source folder on the path (no entry points).
"""

from __future__ import annotations

import csv
import importlib.metadata
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import error_line, read_jsonl, run_tagtune, write_jsonl

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tagtune-example-plugins"
CONFIGS = EXAMPLE / "configs"
MEMBERS = {"caption_backends": ("shout", "tagtune_example_plugins.captions:ShoutBackend"),
           "audio_backends": ("sine", "tagtune_example_plugins.audio:SineBackend"),
           "checkers": ("rms", "tagtune_example_plugins.checkers:RmsChecker"),
           "exporters": ("csv", "tagtune_example_plugins.exporters:CsvExporter")}
LEVEL_DB = -12.0  # model.options.level_db of the renders: between the two thresholds below
THRESHOLDS = ["+verification.custom.rms.thresholds.loud=-30", "+verification.custom.rms.thresholds.deafening=-3"]
TAG_SETS = [["rock", "loud"], ["jazz", "loud", "deafening"], ["piano", "calm"], ["funk", "deafening"],
            ["ambient", "loud", "strings"], ["metal", "drums"]]  # every tag set differs: any of them may go to any split


def _version() -> str:
    return re.search(r'^version = "([^"]+)"', (EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"), re.M).group(1)


def _installed_in_this_environment() -> bool:
    try:
        importlib.metadata.distribution("tagtune-example-plugins")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _cli(path: Path, *args: object, ok: bool = True) -> subprocess.CompletedProcess:
    """``tagtune ARGS`` in a subprocess with ``path`` (and nothing of ours) on PYTHONPATH."""
    proc = run_tagtune(*args, env={"PYTHONPATH": str(path), "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200"},
                       timeout=120)
    if ok:
        assert proc.returncode == 0, f"tagtune {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package installed (offline, no dependencies, no build isolation) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "--quiet", "--target", str(target), str(EXAMPLE)],
                          capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        why = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        pytest.skip(f"pip cannot build the example package offline here: {why[-1] if why else proc.returncode}")
    return target


@pytest.fixture(scope="module")
def rendered(site, tmp_path_factory) -> Path:
    """Tag sets captioned by ``shout`` and rendered by ``sine`` (1 s, level LEVEL_DB, not normalized)."""
    base = tmp_path_factory.mktemp("rendered")
    tags = write_jsonl(base / "tags.jsonl", [{"id": f"s{i}", "tags": t} for i, t in enumerate(TAG_SETS)])
    _cli(site, "caption", "infer", tags, "--config-dir", CONFIGS, "model=caption/shout", "-o", base / "captions.jsonl")
    _cli(site, "tta", "generate", base / "captions.jsonl", "--config-dir", CONFIGS, "model=tta/sine", "-o", base / "audio",
         "generation.duration=1", "generate.normalize=none", f"model.options.level_db={LEVEL_DB}", "device=cpu")
    return base


def test_plugins_lists_each_member_with_its_origin(site):
    listed = json.loads(_cli(site, "plugins", "--json").stdout)
    for family, (name, target) in MEMBERS.items():
        found = [m for m in listed[family] if m["name"] == name]
        assert found, f"{name} not listed in {family}"
        assert found[0]["target"] == target and found[0]["origin"] == f"tagtune-example-plugins {_version()}"
        assert found[0]["available"] and not found[0]["error"] and not found[0]["missing"]
    table = _cli(site, "plugins", "checkers").stdout
    assert re.search(r"rms\s+.\s+tagtune-example-plugins \S+\s+.\s+ok", table), table


def test_shout_writes_the_tags_in_upper_case(rendered):
    rows = read_jsonl(rendered / "captions.jsonl", complete=True)
    assert [sorted(r["tags"]) for r in rows] == [sorted(t) for t in TAG_SETS]  # (tagtune orders them by category)
    assert [r["caption"] for r in rows] == [", ".join(r["tags"]).upper() for r in rows]  # separator from shout.yaml
    assert {r["provenance"]["caption"]["model"] for r in rows} == {"shout"}


def test_sine_renders_a_chord_of_the_caption_at_its_level(rendered):
    meta = read_jsonl(rendered / "audio" / "metadata.jsonl", complete=True)
    assert [m["id"] for m in meta] == [f"s{i}" for i in range(len(TAG_SETS))]
    chords = set()
    for m in meta:
        audio, rate = sf.read(rendered / "audio" / m["file_name"], dtype="float64")
        assert rate == 16000 and len(audio) == 16000 and m["duration"] == 1.0  # sample_rate of sine.yaml, 1 s
        level = 20 * math.log10(float(np.sqrt(np.mean(audio**2))))
        assert abs(level - LEVEL_DB) < 0.1, f"{m['id']}: {level:.2f} dBFS"  # model.options.level_db was honoured
        prov = m["provenance"]["audio"]
        assert prov["model"] == "sine" and prov["revision"].startswith("tagtune-example-plugins:")
        peak = np.argmax(np.abs(np.fft.rfft(audio))) * rate / len(audio)  # 1 Hz bins
        assert min(abs(peak - f) for f in prov["pitches_hz"]) <= 1.0, (peak, prov["pitches_hz"])
        chords.add(tuple(prov["pitches_hz"]))
    assert len(chords) > 1  # the pitches follow the caption


def test_rms_judges_the_tags_its_settings_claim(site, rendered, tmp_path):
    folder = Path(shutil.copytree(rendered / "audio", tmp_path / "audio"))
    _cli(site, "tta", "verify", folder, "-o", tmp_path / "report.json", "verification.checkers=[rms]",
         *THRESHOLDS)
    rows = {r["id"]: r for r in read_jsonl(folder / "verification.jsonl", complete=True)}
    for i, tags in enumerate(TAG_SETS):
        row = rows[f"s{i}"]
        assert row["realised_tags"] == [t for t in tags if t == "loud"]  # -12 dBFS > -30
        assert row["missed_tags"] == [t for t in tags if t == "deafening"]  # -12 dBFS < -3
        assert set(row["unjudged_tags"]) == set(tags) - {"loud", "deafening"}  # rms claims only its two tags
        for tag in ("loud", "deafening"):
            if tag in tags:
                assert row["scores"][tag]["checker"] == "rms" and abs(row["scores"][tag]["rms_db"] - LEVEL_DB) < 0.1
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    judged = sum(t in ("loud", "deafening") for tags in TAG_SETS for t in tags)
    assert report["by_checker"]["rms"]["judged"] == judged
    assert report["by_checker"]["rms"]["realised"] == sum(t == "loud" for tags in TAG_SETS for t in tags)


@pytest.fixture(scope="module")
def built(site, rendered) -> Path:
    """A pipeline run from the shout captions, rendered by sine, assembled into a dataset folder.

    ``pipeline run --config-dir`` does not reach the stages' configs (model=tta/sine is not found
    there), so the backend and its options are given as tta: overrides.
    """
    run = rendered / "run"
    _cli(site, "pipeline", "run", "--captions", rendered / "captions.jsonl", "--stages", "tta", "-o", run,
         "tta:model.name=sine", "tta:model.backend=sine", "tta:+model.options.sample_rate=16000",
         "tta:+model.options.voices=3", f"tta:+model.options.level_db={LEVEL_DB}", "tta:generation.duration=1",
         "tta:device=cpu")
    return run


def _dataset_rows(run: Path) -> dict[str, list[dict]]:
    import pyarrow.parquet as pq

    return {p.parent.name: pq.read_table(p).to_pylist() for p in sorted((run / "dataset").glob("*/metadata.parquet"))}


def test_csv_export_writes_one_manifest_per_split(site, built, tmp_path):
    out = tmp_path / "csv"
    _cli(site, "dataset", "export", built, "--format", "csv", "-o", out)
    dataset = _dataset_rows(built)
    assert sum(map(len, dataset.values())) == len(TAG_SETS) and len(dataset) > 1
    assert sorted(p.stem for p in out.glob("*.csv")) == sorted(dataset)
    for split, rows in dataset.items():
        with open(out / f"{split}.csv", newline="", encoding="utf-8") as fh:
            table = list(csv.DictReader(fh))
        assert [r["id"] for r in table] == [r["id"] for r in rows]
        for line, row in zip(table, rows):
            assert line["caption"] == row["caption"] and line["tags"].split("|") == list(row["tags"])
            assert float(line["duration"]) == row["duration"]
            clip = out / line["file"]
            assert not Path(line["file"]).is_absolute() and clip.is_file()
            assert clip.read_bytes() == (built / "dataset" / split / row["file_name"]).read_bytes()


def test_members_named_by_import_path_without_entry_points(rendered, tmp_path):
    src = EXAMPLE / "src"  # the package importable, but not installed: no entry points
    if not _installed_in_this_environment():  # (after `pip install ./examples/...` its entry points stay visible)
        listed = json.loads(_cli(src, "plugins", "--json").stdout)
        assert not [m for ms in listed.values() for m in ms if m["origin"] != "built-in"]
        err = _cli(src, "tta", "generate", rendered / "captions.jsonl", "--config-dir", CONFIGS, "model=tta/sine",
                   "-o", tmp_path / "no", ok=False).stderr
        assert "unknown audio backend 'sine'" in error_line(err, only=False)

    tags = write_jsonl(tmp_path / "tags.jsonl", [{"id": "a", "tags": ["rock", "loud"]}])
    _cli(src, "caption", "infer", tags, "--config-dir", CONFIGS, "model=caption/shout",
         f"model.backend={MEMBERS['caption_backends'][1]}", "-o", tmp_path / "captions.jsonl")
    assert read_jsonl(tmp_path / "captions.jsonl")[0]["caption"] == "ROCK, LOUD"
    _cli(src, "tta", "generate", tmp_path / "captions.jsonl", "--config-dir", CONFIGS, "model=tta/sine",
         f"model.backend={MEMBERS['audio_backends'][1]}", "generation.duration=0.5", "generate.normalize=none",
         "device=cpu", "-o", tmp_path / "audio")
    _cli(src, "tta", "verify", tmp_path / "audio", f"verification.checkers=[{MEMBERS['checkers'][1]}]",
         "+verification.custom.RmsChecker.thresholds.loud=-30")  # a class named by path: settings under its class name
    row = read_jsonl(tmp_path / "audio" / "verification.jsonl")[0]
    assert row["realised_tags"] == ["loud"] and row["scores"]["loud"]["checker"] == "rms"


def test_export_format_named_by_import_path_with_its_option(built, tmp_path):
    """A format named by package.module:Class (capitals kept), its setting from --option."""
    import csv

    _cli(EXAMPLE / "src", "dataset", "export", built, "--format", MEMBERS["exporters"][1], "--option", "separator=;",
         "-o", tmp_path / "csv")
    with open(tmp_path / "csv" / "train.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all("|" not in r["tags"] for r in rows) and any(";" in r["tags"] for r in rows)


def test_wrong_names_and_settings_are_one_line(site, rendered, built, tmp_path):
    err = _cli(site, "dataset", "export", built, "--format", "cvs", "-o", tmp_path / "x", ok=False)
    assert err.returncode == 2 and "did you mean 'csv'" in error_line(err.stderr)
    err = _cli(site, "tta", "generate", rendered / "captions.jsonl", "model.backend=sine", "-o", tmp_path / "y", ok=False)
    assert err.returncode == 2  # sine without its YAML: the backend's own check names the option it reads
    assert "model.options.sample_rate" in error_line(err.stderr, only=False)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y" / "metadata.jsonl").exists()

