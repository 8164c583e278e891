"""generate(cfg) in-process on the tiny MusicGen: outputs, resume rules, overwrite, seeding, shards."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

from helpers import read_jsonl, write_jsonl
from tagtune.files.ids import safe_id
from tagtune.models.sampling import seed_for_row
from tagtune.report import CaptureReporter
from tagtune.tta.generate import generate


def _stamps(folder):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (folder / "audio").iterdir()}


def _bytes(folder):
    return {p.name: p.read_bytes() for p in sorted((folder / "audio").iterdir())}


def _rewrite(meta, rows):
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_generate_writes_clips_and_audiofolder_metadata(make_cfg, tiny_backend, prompt_rows, tmp_path):
    from tagtune import __version__
    from tagtune.records.rows import CaptionRow

    cfg = make_cfg()
    assert cfg.generate.output == str(tmp_path / "out")  # -o defaults to paths.output_dir
    result = generate(cfg, backend=tiny_backend)
    out = result.output_dir
    lines = read_jsonl(out / "metadata.jsonl", complete=True)
    assert result.generated == len(lines) == 6 and result.skipped == 0 and result.redone == 0
    assert (out / "config.yaml").is_file()
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(f"{r['id']}.wav" for r in prompt_rows)
    by_id = {r["id"]: r for r in lines}
    for rec in lines:
        data, rate = sf.read(out / rec["file_name"])
        assert rate == tiny_backend.sample_rate == rec["sample_rate"]
        expected = 0.1 if rec["id"] == "folk" else cfg.generation.duration  # folk asks for 0.1 s on its line
        assert len(data) == round(expected * rate) and rec["duration"] == expected
        assert abs(data).max() <= 1.0 and abs(data).max() > 0.5  # peak-normalised to -1 dBFS
        audio = rec["provenance"]["audio"]
        assert audio["seed"] == seed_for_row(cfg.seed, CaptionRow(id=rec["id"], tags=[], caption=rec["caption"]), bits=32)
        assert audio["model"] == "tiny" and audio["tagtune_version"] == __version__ and len(audio["input_hash"]) == 16
        assert audio["generation"]["guidance_scale"] == cfg.generation.guidance_scale
    assert list(by_id["rock"])[:4] == ["file_name", "id", "tags", "caption"]
    assert by_id["rock"]["caption"].startswith("energetic") and "text" not in by_id["rock"]
    assert by_id["folk"]["provenance"]["audio"]["generation"]["max_new_tokens"] == 5 + 3
    assert by_id["calm"]["provenance"]["audio"]["generation"]["max_new_tokens"] == 10 + 3


def test_ids_are_kept_verbatim_and_files_get_safe_names(make_cfg, tmp_path, tiny_backend):
    rows = [{"id": "../../x", "caption": "a"}, {"id": "a b", "caption": "b"}, {"id": "a_b", "caption": "c"},
            {"id": "曲-1", "caption": "d"}, {"caption": "e"}]
    path = write_jsonl(tmp_path / "ids.jsonl", rows)
    res = generate(make_cfg(generate__input=path), backend=tiny_backend)
    lines = read_jsonl(res.metadata)
    assert [r["id"] for r in lines] == ["../../x", "a b", "a_b", "曲-1", "row-000005"]
    assert [r["file_name"] for r in lines] == [f"audio/{safe_id(r['id'])}.wav" for r in lines]
    assert {r["file_name"] for r in lines} >= {"audio/a_b.wav", "audio/曲-1.wav", "audio/row-000005.wav"}
    assert len({r["file_name"] for r in lines}) == 5  # "a b" and "a_b" do not share a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids.jsonl", "out", "prompts.jsonl"]  # nothing escaped


def test_user_columns_ride_along(make_cfg, tmp_path, tiny_backend):
    rows = [{"id": "a", "caption": "calm piano", "tags": ["calm"], "mood": ["calm"], "source": "mine", "score": 0.5}]
    res = generate(make_cfg(generate__input=write_jsonl(tmp_path / "x.jsonl", rows)), backend=tiny_backend)
    (rec,) = read_jsonl(res.metadata)
    assert rec["tags"] == ["calm"] and (rec["mood"], rec["source"], rec["score"]) == (["calm"], "mine", 0.5)
    assert list(rec)[-3:] == ["mood", "source", "score"]


def test_tags_given_on_some_prompt_lines_reach_the_metadata(make_cfg, tiny_backend):
    res = generate(make_cfg(generate__limit=2), backend=tiny_backend)  # only the second prompt (rock) has tags
    by_id = {r["id"]: r for r in read_jsonl(res.metadata)}
    assert by_id["rock"]["tags"] == ["rock", "energetic"] and by_id["calm"]["tags"] == []


def test_metadata_fields_come_in_the_documented_order(make_cfg, tmp_path, tiny_backend):
    rows = [{"id": "a", "tags": ["rock"], "caption": "rock", "reference_caption": "an older caption", "x": 1}]
    res = generate(make_cfg(generate__input=write_jsonl(tmp_path / "x.jsonl", rows)), backend=tiny_backend)
    (rec,) = read_jsonl(res.metadata)
    assert list(rec) == ["file_name", "id", "tags", "caption", "reference_caption", "duration", "sample_rate",
                         "loudness_lufs", "provenance", "x"]


def test_rerun_skips_done_clips_and_renders_again_what_no_longer_matches(make_cfg, tiny_backend):
    cfg = make_cfg()
    out = generate(cfg, backend=tiny_backend).output_dir
    meta = out / "metadata.jsonl"
    before = _stamps(out)
    again = generate(cfg, backend=tiny_backend)
    assert (again.generated, again.skipped, again.redone) == (0, 6, 0)
    assert _stamps(out) == before

    # killed between the rename and the append: a file without its line is rendered again
    lines = meta.read_text(encoding="utf-8").splitlines(keepends=True)
    last = json.loads(lines[-1])
    meta.write_text("".join(lines[:-1]), encoding="utf-8")
    res = generate(cfg, backend=tiny_backend)
    assert (res.generated, res.skipped, res.redone) == (1, 5, 0)
    assert {k: v for k, v in _stamps(out).items() if k != f"{last['id']}.wav"} == {
        k: v for k, v in before.items() if k != f"{last['id']}.wav"}
    assert read_jsonl(meta, complete=True)[-1] == last  # same seed and settings: the same line again

    # a line whose file vanished, and a line whose file was truncated: dropped and rendered again, no second line
    rows = read_jsonl(meta)
    (out / rows[0]["file_name"]).unlink()
    (out / rows[1]["file_name"]).write_bytes(b"RIFF")
    reporter = CaptureReporter()
    res = generate(cfg, reporter, backend=tiny_backend)
    assert (res.generated, res.skipped, res.redone) == (2, 4, 2)
    assert any("2 earlier clip(s) no longer match" in n for n in reporter.notes)
    ids = [r["id"] for r in read_jsonl(meta)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6
    assert sf.info(str(out / rows[0]["file_name"])).frames == 3200 == sf.info(str(out / rows[1]["file_name"])).frames


def test_a_torn_last_metadata_line_is_cut_and_its_clip_rendered_again(make_cfg, tiny_backend):
    cfg = make_cfg()
    out = generate(cfg, backend=tiny_backend).output_dir
    meta = out / "metadata.jsonl"
    lines = meta.read_text(encoding="utf-8").splitlines(keepends=True)
    meta.write_text("".join(lines[:-1]) + lines[-1][:20], encoding="utf-8")  # killed mid-append
    res = generate(cfg, backend=tiny_backend)
    assert (res.generated, res.skipped) == (1, 5)
    assert meta.read_text(encoding="utf-8").splitlines(keepends=True) == lines


def test_a_changed_caption_or_setting_renders_the_clip_again(make_cfg, tmp_path, tiny_backend, prompt_rows):
    out = generate(make_cfg(), backend=tiny_backend).output_dir
    before = _stamps(out)
    prompt_rows[0]["caption"] = "a calm ambient piano piece, now with a cello"
    changed = write_jsonl(tmp_path / "changed.jsonl", prompt_rows)
    res = generate(make_cfg(generate__input=changed), backend=tiny_backend)
    assert (res.generated, res.skipped, res.redone) == (1, 5, 1)
    after = _stamps(out)
    assert after["calm.wav"] != before["calm.wav"] and {k: v for k, v in after.items() if k != "calm.wav"} == {
        k: v for k, v in before.items() if k != "calm.wav"}
    by_id = {r["id"]: r for r in read_jsonl(res.metadata)}
    assert by_id["calm"]["caption"].endswith("cello") and len(by_id) == 6
    hotter = generate(make_cfg(generate__input=changed, generation__temperature=1.3), backend=tiny_backend)
    assert (hotter.generated, hotter.redone) == (6, 6)


def test_overwrite_regenerates_everything(make_cfg, tiny_backend):
    first = generate(make_cfg(), backend=tiny_backend)
    before = _stamps(first.output_dir)
    res = generate(make_cfg(generate__overwrite=True), backend=tiny_backend)
    assert res.generated == 6 and res.skipped == 0
    after = _stamps(res.output_dir)
    assert all(after[name] != before[name] for name in before)
    assert len(read_jsonl(res.output_dir / "metadata.jsonl")) == 6


def test_clip_does_not_depend_on_its_batch(make_cfg, tiny_backend):
    four = generate(make_cfg("b4", generation__batch_size=4), backend=tiny_backend).output_dir
    one = generate(make_cfg("ex", generation__seeding="exact"), backend=tiny_backend).output_dir
    assert _bytes(one) == _bytes(four)  # batches of 4 (with padding) and of 1 give the same bytes
    other_seed = generate(make_cfg("s2", seed=43, generate__limit=1), backend=tiny_backend).output_dir
    assert _bytes(other_seed)["calm.wav"] != _bytes(one)["calm.wav"]


def test_shards_together_equal_one_unsharded_run(make_cfg, tiny_backend):
    from tagtune.tta.merge import merge_dir

    whole = generate(make_cfg("whole"), backend=tiny_backend)
    parts = [generate(make_cfg("sharded", generate__shard=f"{i}/2"), backend=tiny_backend) for i in range(2)]
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
    assert key(read_jsonl(sharded / "metadata.jsonl")) == key(read_jsonl(whole.metadata))
    # a shard rerun after the merge finds its clips done in metadata.jsonl
    rerun = generate(make_cfg("sharded", generate__shard="1/2"), backend=tiny_backend)
    assert rerun.generated == 0 and rerun.skipped == rerun.owned


def test_unsharded_run_merges_parts_first(make_cfg, tiny_backend):
    generate(make_cfg("m", generate__shard="0/3"), backend=tiny_backend)
    res = generate(make_cfg("m"), backend=tiny_backend)
    assert res.merged is not None and res.merged.merged
    assert res.skipped == res.merged.lines > 0 and res.generated == 6 - res.skipped
    assert len(read_jsonl(res.metadata)) == 6
    assert not list(res.output_dir.glob("metadata.shard-*"))


def test_limit_and_flac(make_cfg, tiny_backend):
    res = generate(make_cfg(generate__limit=2, generate__format="flac"), backend=tiny_backend)
    assert res.total == 2 and res.generated == 2
    assert sorted(p.suffix for p in (res.output_dir / "audio").iterdir()) == [".flac", ".flac"]


def test_too_long_duration_names_the_line(make_cfg, tmp_path, tiny_backend):
    from tagtune.errors import InputError

    path = write_jsonl(tmp_path / "long.jsonl", [{"id": "a", "caption": "x"}, {"id": "b", "caption": "y", "duration": 3600}])
    with pytest.raises(InputError, match=r"long\.jsonl:2: field 'duration': duration 3600 s needs"):
        generate(make_cfg(generate__input=path), backend=tiny_backend)


def test_no_input_is_a_config_error_naming_the_key(make_cfg, tiny_backend):
    from tagtune.errors import ConfigError

    with pytest.raises(ConfigError, match="no PROMPTS file given") as info:
        generate(make_cfg(generate__input=None), backend=tiny_backend)
    assert info.value.key == "generate.input"


@pytest.mark.shared_data
def test_renders_reference_llm_captions_csv(make_cfg, shared_data, tiny_backend):
    import csv
    import itertools

    source = shared_data / "seed_llm_captions_validation.csv"
    with open(source, newline="", encoding="utf-8") as fh:
        first = list(itertools.islice(csv.DictReader(fh), 3))
    res = generate(make_cfg(generate__input=source, data__caption_column="prediction", generate__limit=3), backend=tiny_backend)
    lines = read_jsonl(res.metadata)
    assert [r["id"] for r in lines] == [row["id"] for row in first]
    assert [r["caption"] for r in lines] == [row["prediction"].strip() for row in first]
    from tagtune.files.readers import parse_tags

    assert lines[0]["tags"] == parse_tags(first[0]["aspect_list"]) and "aspect_list" not in lines[0]
    assert "prediction" not in lines[0]  # it is the caption now


def test_many_distinct_durations_keep_waiting_prompts_bounded(make_cfg, tmp_path, tiny_backend, monkeypatch):
    import tagtune.tta.generate as gen_module

    monkeypatch.setattr(gen_module, "_MAX_PENDING_BATCHES", 1)
    calls = []
    real = tiny_backend.generate
    monkeypatch.setattr(tiny_backend, "generate", lambda texts, *a: calls.append(len(texts)) or real(texts, *a))
    rows = [{"id": f"d{i}", "caption": f"tune {i}", "duration": 0.02 * (i + 1)} for i in range(7)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    res = generate(make_cfg(generate__input=path, generation__batch_size=2), backend=tiny_backend)
    assert res.generated == 7 and sum(calls) == 7
    for rec in read_jsonl(res.metadata):
        assert sf.info(str(res.output_dir / rec["file_name"])).frames == round(rec["duration"] * 16000)


def test_shard_taken_from_torchrun_environment(make_cfg, tiny_backend, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = generate(make_cfg("env"), backend=tiny_backend)
    assert res.shard == "1/2" and res.metadata.name == "metadata.shard-00001-of-00002.jsonl"
    monkeypatch.setenv("RANK", "0")
    other = generate(make_cfg("env"), backend=tiny_backend)
    assert res.owned + other.owned == 6


def test_overwrite_with_a_missing_model_keeps_earlier_output(make_cfg, tiny_backend, monkeypatch):
    from tagtune.errors import ModelNotFoundError

    first = generate(make_cfg(), backend=tiny_backend)
    before = first.metadata.read_bytes()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError):
        generate(make_cfg(generate__overwrite=True, model__name="facebook/musicgen-small"))
    assert first.metadata.read_bytes() == before


def test_every_clip_records_its_measured_loudness_and_loudness_mode_hits_its_target(make_cfg, tiny_backend):
    """Whatever generate.normalize is, each line carries the file's integrated loudness (BS.1770, pyloudnorm);
    with normalize=loudness the files measure at the LUFS target, and a changed target renders them again."""
    import pyloudnorm

    peak = generate(make_cfg("peak", generation__duration=1.0), backend=tiny_backend)
    for rec in read_jsonl(peak.metadata):
        data, rate = sf.read(peak.output_dir / rec["file_name"], dtype="float64")
        loud = rec["provenance"]["audio"]["loudness"]
        assert loud["normalize"] == "peak" and loud["method"].startswith("ITU-R BS.1770-4")
        if rec["id"] == "folk":  # 0.1 s: shorter than a gating block, measured ungated
            assert "ungated" in loud["method"]
            continue
        assert rec["loudness_lufs"] == pytest.approx(pyloudnorm.Meter(rate).integrated_loudness(data), abs=0.05)
    cfg = make_cfg("loud", generation__duration=1.0, generate__normalize="loudness", generate__loudness_db=-20.0)
    loud = generate(cfg, backend=tiny_backend)
    for rec in read_jsonl(loud.metadata):
        data, rate = sf.read(loud.output_dir / rec["file_name"], dtype="float64")
        meta = rec["provenance"]["audio"]["loudness"]
        assert meta["target_lufs"] == -20.0 and meta["true_peak_db"] <= -1.0 + 0.01
        if not meta["peak_limited"] and rec["id"] != "folk":
            assert pyloudnorm.Meter(rate).integrated_loudness(data) == pytest.approx(-20.0, abs=0.1)
            assert rec["loudness_lufs"] == pytest.approx(-20.0, abs=0.1)
    again = generate(make_cfg("loud", generation__duration=1.0, generate__normalize="loudness", generate__loudness_db=-16.0),
                     backend=tiny_backend)
    assert again.redone == 6  # a new LUFS target is a new clip
