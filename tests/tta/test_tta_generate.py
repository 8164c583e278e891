"""generate(cfg) in-process on the tiny MusicGen: outputs, resume rules, overwrite, seeding, shards."""

from __future__ import annotations

import pytest
import soundfile as sf

from tagtune.tta.generate import clip_seed, generate


def _stamps(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (folder / "audio").iterdir()}


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "audio").iterdir())}


def test_generate_writes_clips_and_audiofolder_metadata(make_cfg, prompts_file, tiny_backend, tta_helpers):
    cfg = make_cfg()
    result = generate(cfg, prompts_file, backend=tiny_backend)
    out = result.output_dir
    lines = tta_helpers["read_jsonl"](out / "metadata.jsonl")
    assert result.generated == len(lines) == 6 and result.skipped == 0
    assert (out / "config.yaml").is_file()
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{r['id']}.wav" for r in tta_helpers["PROMPTS"])
    by_id = {r["id"]: r for r in lines}
    for rec in lines:
        data, rate = sf.read(out / rec["file_name"])
        assert rate == tiny_backend.sample_rate == rec["sample_rate"]
        expected = 0.1 if rec["id"] == "folk" else cfg.generation.duration  # folk asks for 0.1 s on its line
        assert len(data) == round(expected * rate) and rec["duration"] == expected
        assert abs(data).max() <= 1.0 and abs(data).max() > 0.5  # peak-normalised to -1 dBFS
        assert rec["seed"] == clip_seed(cfg.seed, rec["id"])
        assert rec["model"] == "tiny" and rec["generation"]["guidance_scale"] == cfg.generation.guidance_scale
    assert list(by_id["rock"])[:8] == ["file_name", "id", "text", "duration", "sample_rate", "seed", "model", "generation"]
    assert by_id["rock"]["tags"] == ["rock", "energetic"] and by_id["rock"]["caption"].startswith("energetic")
    assert by_id["folk"]["generation"]["max_new_tokens"] == 5 + 3
    assert by_id["calm"]["generation"]["max_new_tokens"] == 10 + 3


def test_rerun_skips_recovers_and_repairs(make_cfg, prompts_file, tiny_backend, tta_helpers):
    cfg = make_cfg()
    out = generate(cfg, prompts_file, backend=tiny_backend).output_dir
    meta = out / "metadata.jsonl"
    before = _stamps(out)
    again = generate(cfg, prompts_file, backend=tiny_backend)
    assert (again.generated, again.skipped, again.adopted, again.repaired) == (0, 6, 0, 0)
    assert _stamps(out) == before

    # killed between the rename and the append: a file without its line -> the line is written back
    lines = meta.read_text(encoding="utf-8").splitlines(keepends=True)
    meta.write_text("".join(lines[:-1]) + lines[-1][:20], encoding="utf-8")  # also a torn last line
    res = generate(cfg, prompts_file, backend=tiny_backend)
    assert (res.generated, res.adopted, res.repaired) == (0, 1, 0)
    assert _stamps(out) == before
    assert meta.read_text(encoding="utf-8").splitlines(keepends=True)[-1] == lines[-1]

    # a line whose file vanished -> the file is rendered again, no second line
    victim = tta_helpers["read_jsonl"](meta)[0]
    (out / victim["file_name"]).unlink()
    res = generate(cfg, prompts_file, backend=tiny_backend)
    assert (res.generated, res.adopted, res.repaired) == (0, 0, 1)
    ids = [r["id"] for r in tta_helpers["read_jsonl"](meta)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6
    assert sf.info(str(out / victim["file_name"])).frames > 0

    # a truncated (unreadable) clip with no line is rendered, not adopted
    (out / "audio" / "edm.wav").write_bytes(b"RIFF")
    kept = [ln for ln in meta.read_text(encoding="utf-8").splitlines(keepends=True) if '"id": "edm"' not in ln]
    meta.write_text("".join(kept), encoding="utf-8")
    res = generate(cfg, prompts_file, backend=tiny_backend)
    assert (res.generated, res.adopted) == (1, 0)
    assert sf.info(str(out / "audio" / "edm.wav")).frames == 3200


def test_overwrite_regenerates_everything(make_cfg, prompts_file, tiny_backend, tta_helpers):
    first = generate(make_cfg(), prompts_file, backend=tiny_backend)
    before = _stamps(first.output_dir)
    res = generate(make_cfg(output__overwrite=True), prompts_file, backend=tiny_backend)
    assert res.generated == 6 and res.skipped == 0
    after = _stamps(res.output_dir)
    assert all(after[name] != before[name] for name in before)
    assert len(tta_helpers["read_jsonl"](res.output_dir / "metadata.jsonl")) == 6


def test_clip_does_not_depend_on_its_batch(make_cfg, prompts_file, tiny_backend):
    four = generate(make_cfg("b4", generation__batch_size=4), prompts_file, backend=tiny_backend).output_dir
    one = generate(make_cfg("ex", generation__seeding="exact"), prompts_file, backend=tiny_backend).output_dir
    assert _bytes(one) == _bytes(four)  # batches of 4 (with padding) and of 1 give the same bytes
    other_seed = generate(make_cfg("s2", seed=43, data__limit=1), prompts_file, backend=tiny_backend).output_dir
    assert _bytes(other_seed)["calm.wav"] != _bytes(one)["calm.wav"]


def test_shards_together_equal_one_unsharded_run(make_cfg, prompts_file, tiny_backend, tta_helpers):
    from tagtune.tta.merge import merge_dir

    whole = generate(make_cfg("whole"), prompts_file, backend=tiny_backend)
    parts = [generate(make_cfg("sharded", output__shard=f"{i}/2"), prompts_file, backend=tiny_backend) for i in range(2)]
    sharded = parts[0].output_dir
    assert sum(p.owned for p in parts) == 6 and all(p.owned < 6 for p in parts)
    assert sorted(p.name for p in sharded.glob("metadata.shard-*.jsonl")) == [
        "metadata.shard-00000-of-00002.jsonl", "metadata.shard-00001-of-00002.jsonl"]
    assert not (sharded / "metadata.jsonl").exists()
    assert _bytes(sharded) == _bytes(whole.output_dir)
    report = merge_dir(sharded)
    assert report.merged and report.lines == 6 and not report.orphans
    assert not list(sharded.glob("metadata.shard-*.jsonl"))
    key = lambda rows: sorted(rows, key=lambda r: r["id"])  # noqa: E731
    assert key(tta_helpers["read_jsonl"](sharded / "metadata.jsonl")) == key(tta_helpers["read_jsonl"](whole.metadata))
    # a shard rerun after the merge finds its clips done in metadata.jsonl
    rerun = generate(make_cfg("sharded", output__shard="1/2"), prompts_file, backend=tiny_backend)
    assert rerun.generated == 0 and rerun.skipped == rerun.owned


def test_unsharded_run_merges_parts_first(make_cfg, prompts_file, tiny_backend, tta_helpers):
    generate(make_cfg("m", output__shard="0/3"), prompts_file, backend=tiny_backend)
    res = generate(make_cfg("m"), prompts_file, backend=tiny_backend)
    assert res.merged is not None and res.merged.merged
    assert res.skipped == res.merged.lines > 0 and res.generated == 6 - res.skipped
    assert len(tta_helpers["read_jsonl"](res.metadata)) == 6
    assert not list(res.output_dir.glob("metadata.shard-*"))


def test_limit_and_flac(make_cfg, prompts_file, tiny_backend):
    res = generate(make_cfg(data__limit=2, output__format="flac"), prompts_file, backend=tiny_backend)
    assert res.total == 2 and res.generated == 2
    assert sorted(p.suffix for p in (res.output_dir / "audio").iterdir()) == [".flac", ".flac"]


def test_too_long_duration_names_the_line(make_cfg, tmp_path, tiny_backend, tta_helpers):
    from tagtune.errors import InputError

    path = tta_helpers["write_jsonl"](tmp_path / "long.jsonl", [{"id": "a", "caption": "x"}, {"id": "b", "caption": "y", "duration": 3600}])
    with pytest.raises(InputError, match=r"long\.jsonl:2: field 'duration': duration 3600 s needs"):
        generate(make_cfg(), path, backend=tiny_backend)


@pytest.mark.shared_data
def test_renders_reference_llm_captions_csv(make_cfg, shared_data, tiny_backend, tta_helpers):
    import csv
    import itertools

    source = shared_data / "seed_llm_captions_validation.csv"
    with open(source, newline="", encoding="utf-8") as fh:
        first = list(itertools.islice(csv.DictReader(fh), 3))
    res = generate(make_cfg(data__text_column="prediction", data__limit=3), source, backend=tiny_backend)
    lines = tta_helpers["read_jsonl"](res.metadata)
    assert [r["id"] for r in lines] == [row["id"] for row in first]
    assert [r["text"] for r in lines] == [row["prediction"].strip() for row in first]
    assert lines[0]["aspect_list"] == first[0]["aspect_list"] and "prediction" in lines[0]


def test_many_distinct_durations_keep_waiting_prompts_bounded(make_cfg, tmp_path, tiny_backend, tta_helpers, monkeypatch):
    import tagtune.tta.generate as gen_module

    monkeypatch.setattr(gen_module, "_MAX_PENDING_BATCHES", 1)
    calls = []
    real = tiny_backend.generate
    monkeypatch.setattr(tiny_backend, "generate", lambda texts, *a: calls.append(len(texts)) or real(texts, *a))
    rows = [{"id": f"d{i}", "caption": f"tune {i}", "duration": 0.02 * (i + 1)} for i in range(7)]
    path = tta_helpers["write_jsonl"](tmp_path / "d.jsonl", rows)
    res = generate(make_cfg(generation__batch_size=2), path, backend=tiny_backend)
    assert res.generated == 7 and sum(calls) == 7
    for rec in tta_helpers["read_jsonl"](res.metadata):
        assert sf.info(str(res.output_dir / rec["file_name"])).frames == round(rec["duration"] * 16000)


def test_shard_taken_from_torchrun_environment(make_cfg, prompts_file, tiny_backend, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = generate(make_cfg("env"), prompts_file, backend=tiny_backend)
    assert res.shard == "1/2" and res.metadata.name == "metadata.shard-00001-of-00002.jsonl"
    monkeypatch.setenv("RANK", "0")
    other = generate(make_cfg("env"), prompts_file, backend=tiny_backend)
    assert res.owned + other.owned == 6


def test_overwrite_with_a_missing_model_keeps_earlier_output(make_cfg, prompts_file, tiny_backend, monkeypatch):
    from tagtune.errors import ModelNotFoundError

    first = generate(make_cfg(), prompts_file, backend=tiny_backend)
    before = first.metadata.read_bytes()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError):
        generate(make_cfg(output__overwrite=True, model__name="facebook/musicgen-small"), prompts_file)
    assert first.metadata.read_bytes() == before
