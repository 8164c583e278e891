"""Musical facts as data: the key estimator on music of known key, BPM and key in every verdict line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import read_jsonl, run_cli, write_jsonl

RATE = 22050
MAJOR, HARMONIC_MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 11)


def _cadence(tonic: int, mode: str, seconds_per_chord: float = 0.6) -> np.ndarray:
    """I-IV-V-I (major) or i-iv-V-i (harmonic minor) as triads of harmonic tones: music whose key is beyond doubt."""
    scale = MAJOR if mode == "major" else HARMONIC_MINOR
    t = np.arange(int(seconds_per_chord * RATE)) / RATE
    envelope = np.minimum(1.0, 20 * t) * np.exp(-1.5 * t)
    chords = []
    for degree in (0, 3, 4, 0):
        notes = [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        chord = np.zeros_like(t)
        for semis in [notes[0] - 12, *notes]:  # a bass note an octave below the root
            freq = 261.63 * 2 ** ((tonic + semis) / 12)
            chord += sum(np.sin(2 * np.pi * freq * h * t) / h for h in (1, 2, 3))
        chords.append(chord * envelope)
    y = np.concatenate(chords)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("profile", ["krumhansl", "temperley"])
@pytest.mark.parametrize(("tonic", "mode", "name"), [(0, "major", "C major"), (9, "minor", "A minor"),
                                                      (6, "major", "F# major"), (3, "minor", "D# minor"),
                                                      (10, "major", "A# major")])
def test_key_of_an_unambiguous_cadence(tonic, mode, name, profile):
    from tagtune.tta.key import estimate_key

    key, confidence = estimate_key(_cadence(tonic, mode), RATE, profile)
    assert key == name and 0.5 < confidence <= 1.0


def test_key_of_silence_and_noise():
    from tagtune.tta.key import estimate_key

    assert estimate_key(np.zeros(RATE, np.float32), RATE) == (None, 0.0)
    assert estimate_key(np.zeros(10, np.float32), RATE) == (None, 0.0)
    noise = np.random.default_rng(0).normal(scale=0.1, size=2 * RATE).astype(np.float32)
    _, confidence = estimate_key(noise, RATE)
    _, clear = estimate_key(_cadence(0, "major"), RATE)
    assert confidence < clear  # no pitch content: a weaker fit than real harmony


def test_synth_provenance_states_the_key_and_tempo_it_plays():
    from tagtune.config.commands import compose_command
    from tagtune.records.rows import CaptionRow
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.config import COMMANDS, GENERATE
    from tagtune.tta.key import key_name
    from tagtune.tta.synth import plan

    cfg = compose_command(GENERATE, COMMANDS, ["model=tta/synth"])
    backend = load_backend(cfg.model, "cpu", cfg.tagmap)
    row = CaptionRow(id="x", caption="c", tags=["slow tempo", "piano"])
    truth = backend.provenance(row, 11)["plan"]
    p = plan(row.tags, 11, backend.table)
    assert truth == {"bpm": p.bpm, "key": key_name(p.tonic, p.scale), "tonic": p.tonic, "scale": p.scale}
    assert 60 <= truth["bpm"] <= 80 and truth["scale"] in ("major", "minor")
    keys = {backend.provenance(row, seed)["plan"]["key"] for seed in range(40)}
    assert len(keys) > 6  # seeds spread over keys: a benchmark can measure accuracy against them


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> Path:
    """Six synth clips (one with no tempo tag) rendered and verified with the tempo checker only."""
    base = tmp_path_factory.mktemp("facts")
    rows = [{"id": f"t{i}", "caption": "x", "tags": [tempo, "piano"]}
            for i, tempo in enumerate(["slow tempo", "fast tempo", "medium tempo", "very fast tempo", "slow tempo"])]
    rows.append({"id": "free", "caption": "x", "tags": ["piano", "rock"]})  # no tempo tag: the tempo checker skips it
    prompts = write_jsonl(base / "prompts.jsonl", rows)
    out = base / "out"
    res = run_cli("tta", "generate", prompts, "-o", out, "model=tta/synth", "generation.duration=4", "device=cpu")
    assert res.code == 0, res.err
    res = run_cli("tta", "verify", out, "verification.checkers=[tempo]", "-o", base / "report.json")
    assert res.code == 0, res.err
    return out


def test_every_verdict_line_carries_bpm_and_key(judged):
    lines = {r["id"]: r for r in read_jsonl(judged / "verification.jsonl")}
    plans = {r["id"]: r["provenance"]["audio"]["plan"] for r in read_jsonl(judged / "metadata.jsonl")}
    assert set(lines) == set(plans)
    for ident, line in lines.items():
        facts = line["facts"]
        assert set(facts) == {"bpm", "bpm_confidence", "key", "key_confidence"}
        assert facts["bpm"] == pytest.approx(plans[ident]["bpm"], rel=0.04)  # the synth plays its planned tempo
        assert 0 <= facts["bpm_confidence"] <= 1 and 0 <= facts["key_confidence"] <= 1
        assert facts["key"] is None or facts["key"].split()[1] in ("major", "minor")
        assert set(line["facts_by"]) == {"bpm", "key"} and "method=tempo" in line["facts_by"]["bpm"]
        scores = line["scores"]
        tempo = [s for s in scores.values() if s["checker"] == "tempo"]
        if ident == "free":
            assert not tempo  # measured all the same
        else:
            assert tempo[0]["bpm"] == facts["bpm"]  # the checker's own measurement, not a second one
    report = json.loads((judged.parent / "report.json").read_text(encoding="utf-8"))
    assert report["facts"]["bpm"]["measured"] == 6 and report["facts"]["key"]["measured"] >= 1


def test_facts_can_be_switched_off_and_switching_them_judges_again(judged, tmp_path):
    import shutil

    folder = Path(shutil.copytree(judged, tmp_path / "out"))
    res = run_cli("tta", "verify", folder, "verification.checkers=[tempo]", "verification.facts=[]", "-o",
                  tmp_path / "r.json")
    assert res.code == 0, res.err
    lines = read_jsonl(folder / "verification.jsonl")
    assert len(lines) == 6 and all("facts" not in r for r in lines)
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report["run"]["redone"] == 6 and report["facts"] == {}
    res = run_cli("tta", "verify", folder, "verification.checkers=[tempo]", "verification.facts=[bpm]")
    assert res.code == 0, res.err
    assert all(set(r["facts"]) == {"bpm", "bpm_confidence"} for r in read_jsonl(folder / "verification.jsonl"))
