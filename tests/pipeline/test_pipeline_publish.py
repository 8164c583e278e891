"""The published dataset read back by its consumers' own libraries: datasets, huggingface_hub, pyarrow,
webdataset, and audiocraft's manifest conventions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import read_jsonl, run_cli, write_jsonl

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("publish") / "D"
    res = run_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "-n", "12")
    assert res.code == 0, res.err
    return out


def _decodes_audio() -> bool:
    """torchcodec (datasets >= 4 encodes and decodes Audio through it) loads only with FFmpeg's libraries."""
    from tagtune.pipeline.hf import ffmpeg_available

    if not ffmpeg_available():
        return False
    try:
        import torchcodec.decoders  # noqa: F401
    except Exception:  # noqa: BLE001 -- an ImportError or a RuntimeError from a missing shared library
        return False
    return True


NO_FFMPEG = "FFmpeg's shared libraries are missing, so torchcodec cannot load (bash scripts/install-ffmpeg.sh installs them)"


@pytest.mark.skipif(not _decodes_audio(), reason=NO_FFMPEG)
def test_load_dataset_gives_the_three_splits_without_overlap(run):
    datasets = pytest.importorskip("datasets")
    from datasets import Audio

    ds = datasets.load_dataset(str(run / "dataset"))
    assert set(ds) == set(SPLITS)
    ids = [i for s in SPLITS for i in ds[s].cast_column("audio", Audio(decode=False))["id"]]
    assert len(ids) == 12 == len(set(ids))  # every row written, none in two splits


def test_the_card_says_how_to_load_the_folder_without_ffmpeg_and_that_code_runs(run, monkeypatch):
    """The card's no-FFmpeg snippet, run as written from the folder that holds the dataset, gives every
    split's rows and decodes a clip with soundfile (no torchcodec involved); the card names no path of
    this machine."""
    card = (run / "dataset" / "README.md").read_text(encoding="utf-8")
    assert str(run) not in card
    section = card.split("Without FFmpeg", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(run)
    scope: dict = {}
    exec(code, scope)  # noqa: S102 -- the card's own example
    assert set(scope["ds"]) == set(SPLITS) and sum(len(scope["ds"][s]) for s in SPLITS) == 12
    assert scope["rate"] > 0 and len(scope["audio"]) > 0


@pytest.mark.parametrize("present", [True, False])
def test_the_load_line_works_with_and_without_ffmpeg(run, monkeypatch, present):
    """`pipeline run` prints how to load the folder here: load_dataset with FFmpeg, the Parquet metadata
    without it (and that line, evaluated, loads)."""
    import datasets

    from tagtune.pipeline import dataset, hf

    monkeypatch.setattr(hf, "ffmpeg_available", lambda: present)
    lines = dataset.load_lines(run / "dataset")
    if present:
        assert lines == [f"datasets.load_dataset('{run / 'dataset'}')"]
        return
    assert lines[0].startswith("datasets.load_dataset('parquet'") and "FFmpeg" in lines[1]
    ds = eval(lines[0], {"datasets": datasets})  # noqa: S307 -- the printed line itself
    assert sum(len(ds[s]) for s in SPLITS) == 12 and "file_name" in ds["train"].column_names


def test_every_row_says_how_it_was_made(run):
    import pyarrow.parquet as pq

    for split in SPLITS:
        for row in pq.read_table(run / "dataset" / split / "metadata.parquet").to_pylist():
            prov = row["provenance"]
            assert prov["audio"]["model"] == "tiny" and isinstance(prov["audio"]["seed"], int)
            assert prov["audio"]["generation"]["guidance_scale"] is not None
            assert prov["caption"]["model"] == "tiny" and prov["tags"]["fingerprint"]


def test_the_card_parses_with_huggingface_hub(run):
    hub = pytest.importorskip("huggingface_hub")
    card = hub.DatasetCard.load(run / "dataset" / "README.md")
    data = card.data.to_dict()
    assert data["configs"][0]["config_name"] == "default"
    assert {f["split"] for f in data["configs"][0]["data_files"]} == set(SPLITS)
    assert data["size_categories"] == ["n<1K"] and data["license"]


def test_parquet_export_declares_audio_and_reads_back(run, tmp_path):
    datasets = pytest.importorskip("datasets")
    import pyarrow.parquet as pq
    from datasets import Audio

    res = run_cli("dataset", "export", run, "--format", "parquet", "-o", tmp_path / "E")
    assert res.code == 0, res.err
    files = sorted((tmp_path / "E" / "data").glob("*.parquet"))
    meta = json.loads(pq.read_schema(files[0]).metadata[b"huggingface"])
    assert meta["info"]["features"]["audio"]["_type"] == "Audio"
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "E" / "data"))
    back = {i for split in ds for i in ds[split].cast_column("audio", Audio(decode=False))["id"]}
    written = {r["id"] for r in read_jsonl(run / "tta" / "metadata.jsonl")}
    assert back == written


AUDIO_META = ("path", "duration", "sample_rate", "amplitude", "weight", "info_path")  # audiocraft's AudioMeta fields
MUSIC_INFO = ("title", "artist", "key", "bpm", "genre", "moods", "keywords", "description", "name", "instrument")


def _audiocraft_reads_back(run: Path, tmp_path: Path) -> None:
    """Exported from the directory audiocraft would run in (here tmp_path): relative paths, a dset YAML, every stage."""
    import os

    import soundfile as sf
    import yaml

    os.chdir(tmp_path)  # the test runs in its own scratch directory; audiocraft's paths are relative to it
    res = run_cli("dataset", "export", run, "--format", "audiocraft", "-o", "egs/tagtune")
    assert res.code == 0, res.err
    dset = yaml.safe_load((tmp_path / "egs" / "tagtune" / "tagtune.yaml").read_text(encoding="utf-8"))
    source = dset["datasource"]
    assert set(source) == {"max_sample_rate", "max_channels", "train", "valid", "evaluate", "generate"}
    assert source["max_channels"] >= 1 and source["max_sample_rate"] > 0
    manifests = {stage: [json.loads(ln) for ln in (Path(source[stage]) / "data.jsonl").read_text().splitlines()]
                 for stage in ("train", "valid", "evaluate", "generate") if source[stage]}
    assert sum(len(v) for k, v in manifests.items() if k != "generate") == 12
    assert manifests["generate"] == manifests["evaluate"]  # the prompts of audiocraft's generate stage: the test split
    rows = {r["id"]: r for r in read_jsonl(run / "verify" / "metadata.jsonl")} if (run / "verify").is_dir() else {}
    for line in [ln for v in manifests.values() for ln in v]:
        assert set(line) == set(AUDIO_META) and not Path(line["path"]).is_absolute()
        info = sf.info(line["path"])
        assert info.samplerate == line["sample_rate"] <= source["max_sample_rate"]
        assert abs(info.duration - line["duration"]) < 1e-3
        sidecar = json.loads(Path(line["path"]).with_suffix(".json").read_text())
        assert set(sidecar) == set(MUSIC_INFO) and sidecar["description"]
        measured = rows.get(sidecar["name"], {})
        if measured.get("bpm"):
            assert sidecar["bpm"] == pytest.approx(measured["bpm"], abs=0.01) and sidecar["key"] == measured.get("key_estimate")
    assert str(tmp_path) not in (tmp_path / "egs" / "tagtune" / "tagtune.yaml").read_text()


def test_trainer_exports_read_back_by_their_conventions(run, tmp_path):
    wds = pytest.importorskip("webdataset")

    _audiocraft_reads_back(run, tmp_path)
    assert run_cli("dataset", "export", run, "--format", "webdataset", "-o", tmp_path / "wds").code == 0
    shards = sorted(str(p) for p in (tmp_path / "wds").glob("*.tar"))
    samples = list(wds.WebDataset(shards, shardshuffle=False))
    assert len(samples) == 12 and all("wav" in s and "json" in s for s in samples)
    assert all(json.loads(s["json"])["prompt"] for s in samples)


def test_push_over_a_stricter_input_licence_is_refused(tmp_path):
    out = tmp_path / "D"
    res = run_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "-n", "4", "dataset.license=cc-by-4.0",
                  "+dataset.input_licenses.audio_model=cc-by-nc-4.0")
    assert res.code == 0, res.err
    assert "licence" in res.err  # the run warns at once
    res = run_cli("dataset", "export", out, "--push", "me/my-set", "-o", tmp_path / "E")
    assert res.code == 2 and "cc-by-nc-4.0" in res.error(only=False).lower()
    assert "--licence-checked" in res.error(only=False)


def test_conceptcaps_preset_names_the_non_commercial_audio_licence():
    from tagtune.config.compose import compose

    cfg = compose("pipeline", preset="conceptcaps")
    assert cfg.dataset.license == "cc-by-nc-sa-4.0" and cfg.dataset.input_licenses.audio_model == "cc-by-nc-4.0"


def test_exclude_drops_exactly_the_rows_of_an_evaluation_set(run, tmp_path):
    rows = read_jsonl(run / "tta" / "metadata.jsonl")
    held = write_jsonl(tmp_path / "eval.jsonl", [{"tags": r["tags"]} for r in rows[:3]])
    sets = {tuple(sorted(r["tags"])) for r in rows[:3]}
    expect = sum(tuple(sorted(r["tags"])) in sets for r in rows)
    out = tmp_path / "E"
    res = run_cli("dataset", "export", run, "--format", "jsonl", "--exclude", held, "-o", out)
    assert res.code == 0, res.err
    kept = [json.loads(ln) for s in SPLITS if (out / f"{s}.jsonl").is_file() for ln in (out / f"{s}.jsonl").read_text().splitlines()]
    assert len(kept) == 12 - expect and not {tuple(sorted(r["tags"])) for r in kept} & sets
    assert f"{expect} rows left out" in " ".join(res.out.split())


def test_parquet_export_card_describes_the_rows_left_after_exclude(run, tmp_path):
    """The export's card counts what the export holds, not the dataset it came from."""
    hub = pytest.importorskip("huggingface_hub")
    rows = read_jsonl(run / "tta" / "metadata.jsonl")
    held = write_jsonl(tmp_path / "eval.jsonl", [{"tags": r["tags"]} for r in rows[:3]])
    sets = {tuple(sorted(r["tags"])) for r in rows[:3]}
    expect = sum(tuple(sorted(r["tags"])) in sets for r in rows)
    out = tmp_path / "E"
    res = run_cli("dataset", "export", run, "--format", "parquet", "--exclude", held, "-o", out)
    assert res.code == 0, res.err
    data = hub.DatasetCard.load(out / "README.md").data.to_dict()
    sizes = {s["name"]: s["num_examples"] for s in data["dataset_info"]["splits"]}
    assert sum(sizes.values()) == 12 - expect
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"**{12 - expect} clips**" in card and f"- clips: {12 - expect}," in card
    assert f"Leakage guard: {expect} rows were dropped" in card


def test_pipeline_exclude_reports_the_count_in_the_card(run, tmp_path):
    rows = read_jsonl(run / "tta" / "metadata.jsonl")
    held = write_jsonl(tmp_path / "eval.jsonl", [{"tags": r["tags"], "caption": "an unrelated evaluation caption"}
                                                 for r in rows[:2]])
    sets = {tuple(sorted(r["tags"])) for r in rows[:2]}
    expect = sum(tuple(sorted(r["tags"])) in sets for r in rows)
    out = tmp_path / "D2"
    res = run_cli("pipeline", "run", "--preset", "quick_test", "-o", out, "-n", "12", "--exclude", held)
    assert res.code == 0, res.err
    import pyarrow.parquet as pq

    kept = [r for s in SPLITS if (out / "dataset" / s / "metadata.parquet").is_file()
            for r in pq.read_table(out / "dataset" / s / "metadata.parquet").to_pylist()]
    assert len(kept) == 12 - expect
    card = (out / "dataset" / "README.md").read_text(encoding="utf-8")
    assert f"Leakage guard: {expect} rows were dropped" in card
