"""Verification: the synth renderer as an oracle, each checker on known truth, `tta verify` end to end."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest

from helpers import count_lines, read_jsonl, run_cli, signal_when, tagtune_argv, write_jsonl
from tagtune.config.commands import compose_command
from tagtune.tta.config import COMMANDS, GENERATE, VERIFY

TEMPO_RANGES = {"slow tempo": (60.0, 80.0), "medium tempo": (90.0, 115.0), "fast tempo": (125.0, 150.0),
                "very fast tempo": (160.0, 190.0)}
SWAP = {"slow tempo": "fast tempo", "fast tempo": "slow tempo", "medium tempo": "very fast tempo",
        "very fast tempo": "slow tempo"}
INSTRUMENT_SETS = (["piano"], ["drums", "bass guitar"], ["acoustic guitar", "violin"], ["synthesizer", "drum machine"],
                   ["strings", "flute"], ["electric guitar", "drums", "saxophone"])


def _verify_cfg(*overrides: str):
    return compose_command(VERIFY, COMMANDS, list(overrides))


def _table():
    from tagtune.tta.synth import SynthTable

    return SynthTable.from_tagmap(_verify_cfg().tagmap)


def _prompts(n: int) -> list[dict]:
    """Tag sets covering every tempo tag and several instruments, with captions."""
    tempos = list(TEMPO_RANGES)
    rows = []
    for i in range(n):
        tags = [tempos[i % 4], *INSTRUMENT_SETS[i % len(INSTRUMENT_SETS)], "rock" if i % 2 else "calm"]
        rows.append({"id": f"c{i:02d}", "tags": tags, "caption": "music with " + ", ".join(tags)})
    return rows


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    """Twelve 3-second synth clips rendered by the CLI (the same folder for every test; copy to change it)."""
    base = tmp_path_factory.mktemp("synth")
    prompts = write_jsonl(base / "prompts.jsonl", _prompts(12))
    res = run_cli("tta", "generate", prompts, "-o", base / "out", "model=tta/synth", "generation.duration=3",
                  "--preset", "quick_test", "device=cpu")
    assert res.code == 0, res.err
    return base / "out"


def _copy(src: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(src, dest))


# -- the renderer ----------------------------------------------------------------------------------

def test_synth_renders_deterministically_and_reports_what_it_cannot_render():
    from tagtune.tta.synth import render, what_it_renders

    table = _table()
    a = render(["fast tempo", "piano", "drums"], 2.0, 16000, 7, table)
    assert a.dtype == np.float32 and a.shape == (32000,) and 0.5 < np.abs(a).max() <= 1.0
    assert np.array_equal(a, render(["fast tempo", "piano", "drums"], 2.0, 16000, 7, table))
    assert not np.array_equal(a, render(["fast tempo", "piano", "drums"], 2.0, 16000, 8, table))
    rendered, ignored = what_it_renders(["rock", "fast tempo", "piano", "male vocals"], table)
    assert rendered == ["fast tempo", "piano"] and ignored == ["rock", "male vocals"]


def test_synth_backend_records_unrendered_tags_and_misses_on_purpose(synth_dir):
    rows = read_jsonl(synth_dir / "metadata.jsonl")
    audio = rows[0]["provenance"]["audio"]
    assert audio["model"] == "synth" and audio["revision"].startswith("tagmap:")
    assert audio["unrendered_tags"] == ["calm"] and "fast tempo" not in audio["unrendered_tags"]
    assert all("missed" not in r["provenance"]["audio"] for r in rows)  # miss_rate defaults to 0

    from tagtune.records.rows import CaptionRow
    from tagtune.tta.backends.base import load_backend

    cfg = compose_command(GENERATE, COMMANDS, ["model=tta/synth", "model.miss_rate=1.0"])
    backend = load_backend(cfg.model, "cpu", cfg.tagmap)
    row = CaptionRow(id="x", caption="slow", tags=["slow tempo", "piano"])
    assert backend.tags_to_render(row.tags, 3) == ["very fast tempo", "piano"]  # the farthest tempo
    assert backend.provenance(row, 3)["missed"] is True


# -- checkers on known truth --------------------------------------------------------------------------

def _context(cfg, folder: Path, candidates=None):
    from tagtune.tta.checkers import CheckerContext

    return CheckerContext(cfg=cfg, folder=folder, candidates=candidates or {})


@pytest.mark.parametrize("tag", list(TEMPO_RANGES))
def test_tempo_checker_on_synth_audio_of_known_bpm(tag, tmp_path):
    from tagtune.tta.checkers import Clip, TagToJudge, TempoChecker
    from tagtune.tta.synth import plan, render

    cfg = _verify_cfg()
    checker = TempoChecker(cfg.verification.tempo, _context(cfg, tmp_path))
    table = _table()
    clips, truth = [], []
    for seed in range(3):
        tags = [tag, *INSTRUMENT_SETS[seed]]
        clips.append(Clip(f"s{seed}", render(tags, 4.0, 22050, seed, table), 22050, "x"))
        truth.append(plan(tags, seed, table).bpm)
    wrong = SWAP[tag]
    verdicts = checker.judge(clips, [[TagToJudge(tag, "tempo"), TagToJudge(wrong, "tempo")]] * 3)
    for bpm, v in zip(truth, verdicts, strict=True):
        assert v[tag].realised and not v[wrong].realised
        assert v[tag].detail["bpm"] == pytest.approx(bpm, rel=0.02)  # the measured BPM is the rendered one


class FakeEmbedder:
    """Hand-made embeddings: tag k's text is the unit vector e_k; a clip's audio is the normalised sum
    of the vectors of the tags it carries, so the truth is known exactly."""

    def __init__(self, vocab):
        self.vocab = list(vocab)
        self.revision = "hand-made"
        self.audio_calls = 0

    def _vec(self, words):
        v = np.zeros(len(self.vocab) + 1)
        v[-1] = 0.2  # a shared component, as real embeddings have
        for w in words:
            v[self.vocab.index(w)] += 1.0
        return v / np.linalg.norm(v)

    def embed_texts(self, texts):
        return np.stack([self._vec([next(t for t in self.vocab if text.endswith(t))]) for text in texts])

    def embed_audio(self, clips):
        self.audio_calls += len(clips)
        return np.stack([self._vec(audio) for audio, _ in clips])


def test_clap_checker_decisions_on_hand_made_embeddings(tmp_path):
    from dataclasses import replace

    from tagtune.tta.checkers import ClapChecker, Clip, TagToJudge, decide

    instruments = ["piano", "drums", "violin", "flute", "trumpet"]
    cfg = _verify_cfg()
    checker = ClapChecker(cfg.verification.clap, _context(cfg, tmp_path, {"instrument": instruments}))
    checker._embedder = fake = FakeEmbedder(instruments)
    clips = [Clip("a", ["piano", "drums"], 16000, "d1"), Clip("b", ["violin"], 16000, "d2")]
    asked = [[TagToJudge("piano", "instrument"), TagToJudge("drums", "instrument")],
             [TagToJudge("violin", "instrument"), TagToJudge("trumpet", "instrument")]]
    first = checker.judge(clips, asked)
    assert first[0]["piano"].realised and first[0]["drums"].realised
    assert first[1]["violin"].realised and first[1]["violin"].detail["rank"] == 1
    # "trumpet" was asked for but is not in clip b: with two tags asked and top_k 3 it may rank in
    # the top 4 of 5; the margin decision tells it apart
    margin = replace(cfg.verification.clap, decision="margin", margin=0.05)
    verdict = decide(np.array([0.2, 0.2, 0.9, 0.2, 0.2]), instruments, ["violin", "trumpet"], margin)
    assert verdict["violin"].realised and not verdict["trumpet"].realised
    rank1 = replace(cfg.verification.clap, decision="rank", top_k=1)
    sims = np.array([0.9, 0.8, 0.1, 0.1, 0.85])  # piano, drums ... trumpet
    by_rank = decide(sims, instruments, ["piano", "drums"], rank1)
    assert by_rank["piano"].realised and not by_rank["drums"].realised  # drums ranks 3rd of the 2 allowed
    threshold = replace(cfg.verification.clap, decision="threshold", threshold=0.82)
    assert [v.realised for v in decide(sims, instruments, ["piano", "drums"], threshold).values()] == [True, False]
    # audio embeddings are computed once per clip content, then read from the cache
    calls = fake.audio_calls
    checker.judge(clips, asked)
    assert fake.audio_calls == calls and len(list(checker.cache_dir.glob("*.npy"))) == 2


def test_own_checker_from_config_and_unknown_checker(tmp_path):
    from tagtune.errors import ConfigError
    from tagtune.tta.checkers import load_checkers

    cfg = _verify_cfg("verification.checkers=[helpers.checkers:LoudnessChecker,tempo]",
                      "+verification.custom.LoudnessChecker.min_rms=0.05")
    checkers = load_checkers(cfg.verification, _context(cfg, tmp_path))
    assert [c.name for c in checkers] == ["loudness", "tempo"] and checkers[0].min_rms == 0.05
    bad = _verify_cfg("verification.checkers=[no_such_checker]")
    with pytest.raises(ConfigError, match="unknown checker 'no_such_checker'"):
        load_checkers(bad.verification, _context(bad, tmp_path))


# -- tta verify end to end ------------------------------------------------------------------------------

def _verify(folder: Path, *args) -> tuple[dict, object]:
    res = run_cli("tta", "verify", folder, "-o", folder.parent / "report.json", "verification.checkers=[tempo]", *args)
    assert res.code == 0, res.err
    return json.loads((folder.parent / "report.json").read_text(encoding="utf-8")), res


def test_verify_realises_tempo_and_catches_swapped_tags(synth_dir, tmp_path):
    folder = _copy(synth_dir, tmp_path / "out")
    report, res = _verify(folder)
    assert report["by_category"]["tempo"]["rate"] >= 0.9 and report["by_category"]["tempo"]["judged"] == 12
    assert "category tempo" in res.out and (tmp_path / "report.png").is_file()
    rows = read_jsonl(folder / "verification.jsonl")
    assert len(rows) == 12 and all(set(r) >= {"realised_tags", "realisation", "scores", "unjudged_tags"} for r in rows)
    assert all(r["unjudged_tags"] for r in rows)  # rock / calm and the instruments: no checker for them here

    meta = read_jsonl(folder / "metadata.jsonl")  # every tempo tag swapped for a contradicting one
    for rec in meta:
        rec["tags"] = [SWAP.get(t, t) for t in rec["tags"]]
    write_jsonl(folder / "metadata.jsonl", meta)
    swapped, res = _verify(folder)  # the changed tags are noticed without --force
    assert swapped["by_category"]["tempo"]["rate"] <= 0.2 and swapped["run"]["redone"] == 12
    forced, _ = _verify(folder, "--force")
    assert forced["by_category"]["tempo"]["rate"] == swapped["by_category"]["tempo"]["rate"]
    assert forced["run"]["scored"] == 12 and count_lines(folder / "verification.jsonl") == 12


def test_verify_uses_the_settings_recorded_in_the_folder(synth_dir, tmp_path):
    """`tta verify DIR` with no preset judges with DIR's own tagmap and CLAP (here: the offline tiny one)."""
    folder = _copy(synth_dir, tmp_path / "out")
    res = run_cli("tta", "verify", folder, "-o", tmp_path / "r.json")
    assert res.code == 0, res.err
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["checkers"]["clap"]["model"] == "tiny" and set(report["by_checker"]) == {"tempo", "clap"}
    assert report["by_category"]["instrument"]["judged"] > 0 and report["by_category"]["tempo"]["rate"] >= 0.9


def test_verify_names_a_missing_or_unreadable_clip(synth_dir, tmp_path):
    folder = _copy(synth_dir, tmp_path / "out")
    (folder / "audio" / "c03.wav").unlink()
    res = run_cli("tta", "verify", folder, "verification.checkers=[tempo]")
    assert res.code == 2 and "audio/c03.wav" in res.error("does not exist") and "metadata.jsonl:4" in res.err
    assert not (folder / "verification.jsonl").exists()  # checked before anything is judged
    (folder / "audio" / "c03.wav").write_bytes(b"RIFF not really a wav")
    res = run_cli("tta", "verify", folder, "verification.checkers=[tempo]", "verification.batch_size=1")
    assert res.code == 2 and "c03.wav" in res.error("cannot read audio", only=False)
    assert count_lines(folder / "verification.jsonl") == 3  # the clips before it are kept


def test_verify_killed_and_rerun_scores_each_clip_once(synth_dir, tmp_path):
    folder = _copy(synth_dir, tmp_path / "out")
    lines = folder / "verification.jsonl"
    argv = tagtune_argv("tta", "verify", folder, "verification.checkers=[tempo]", "verification.batch_size=1")
    code = signal_when(argv, lambda: lines.is_file() and count_lines(lines) >= 3, sig=signal.SIGINT)
    assert code == 130
    done = count_lines(lines)
    assert 3 <= done < 12
    report, _ = _verify(folder)
    assert report["run"]["skipped"] == done and report["run"]["scored"] == 12 - done
    ids = [r["id"] for r in read_jsonl(lines)]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 12


def test_verify_resumes_after_a_line_torn_by_a_kill(synth_dir, tmp_path):
    """A SIGKILL mid-write leaves half a line: the rerun cuts it off and judges that clip again."""
    folder = _copy(synth_dir, tmp_path / "out")
    lines = folder / "verification.jsonl"
    _verify(folder)
    whole = lines.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.write_text("".join(whole[:4]) + whole[4][: len(whole[4]) // 2], encoding="utf-8")
    report, _ = _verify(folder)
    assert report["run"]["skipped"] == 4 and report["run"]["scored"] == 8
    ids = [r["id"] for r in read_jsonl(lines)]
    assert len(ids) == 12 == len(set(ids))


def test_two_shards_then_the_merge_equal_one_unsharded_verify(synth_dir, tmp_path):
    whole = _copy(synth_dir, tmp_path / "whole")
    report, _ = _verify(whole)
    sharded = _copy(synth_dir, tmp_path / "sharded")
    for i in range(2):
        res = run_cli("tta", "verify", sharded, "verification.checkers=[tempo]", "--shard", f"{i}/2")
        assert res.code == 0, res.err
        assert f"shard {i}/2" in res.out and "tagtune tta verify" in res.out
    parts = sorted(sharded.glob("verification.shard-*.jsonl"))
    assert [p.name for p in parts] == ["verification.shard-00000-of-00002.jsonl", "verification.shard-00001-of-00002.jsonl"]
    ids = [[r["id"] for r in read_jsonl(p)] for p in parts]
    assert all(ids) and sorted(ids[0] + ids[1]) == [f"c{i:02d}" for i in range(12)]  # each clip judged once
    assert not (sharded / "verification.jsonl").exists() and not (sharded / "verification_report.json").exists()
    again = run_cli("tta", "verify", sharded, "verification.checkers=[tempo]", "--shard", "1/2")
    assert "0 clip(s) judged" in again.out  # resumable per id, like any run

    merged, res = _verify(sharded)  # the unsharded run merges the parts and writes the report
    assert "merged 12 verdict line(s)" in res.out
    assert merged["run"]["scored"] == 0 and merged["run"]["skipped"] == 12
    assert (sharded / "verification.jsonl").read_bytes() == (whole / "verification.jsonl").read_bytes()
    assert not list(sharded.glob("verification.shard-*"))
    assert merged["by_tag"] == report["by_tag"] and merged["overall"] == report["overall"]
    rerun = run_cli("tta", "verify", sharded, "verification.checkers=[tempo]", "--shard", "0/2")
    assert rerun.code == 0 and "0 clip(s) judged" in rerun.out  # done in the merged file


def test_fold_keeps_one_current_line_per_clip(tmp_path):
    from tagtune.tta.verify import VERIFICATION, fold_parts

    def line(ident, digest, score):
        return {"id": ident, "input_hash": digest, "realisation": score}

    write_jsonl(tmp_path / VERIFICATION, [line("b", "old", 0.1), line("a", "ha", 0.5)])
    write_jsonl(tmp_path / "verification.shard-00000-of-00002.jsonl", [line("b", "hb", 0.9), line("c", "hc", 1.0)])
    write_jsonl(tmp_path / "verification.shard-00001-of-00002.jsonl", [line("a", "stale", 0.0)])
    assert fold_parts(tmp_path, ["a", "b", "c"], {"a": "ha", "b": "hb", "c": "hc"}) == 3
    assert read_jsonl(tmp_path / VERIFICATION) == [line("a", "ha", 0.5), line("b", "hb", 0.9), line("c", "hc", 1.0)]
    assert not list(tmp_path.glob("verification.shard-*"))
