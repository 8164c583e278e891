"""FAD against closed forms, the tiny CLAP, and evaluate(cfg) outputs."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest

from helpers import write_jsonl
from tagtune.config.commands import compose_command
from tagtune.tta.config import COMMANDS, EVALUATE, GENERATE
from tagtune.tta.fad import fad, frechet_distance, gaussian_stats


def test_frechet_distance_closed_forms():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2
    assert math.isclose(frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]), 9.0 + 1.0)
    # commuting (diagonal) covariances: sum of per-axis 1-D distances
    d = frechet_distance([0, 0], np.diag([1.0, 4.0]), [1, 2], np.diag([9.0, 1.0]))
    assert math.isclose(d, (1 + 4) + (1 - 3) ** 2 + (2 - 1) ** 2)
    # identical Gaussians: zero; a shift only: the squared shift
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T + np.eye(5)
    assert frechet_distance(np.zeros(5), cov, np.zeros(5), cov) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(np.zeros(5), cov, np.full(5, 2.0), cov) == pytest.approx(20.0, rel=1e-8)


def test_frechet_distance_is_rotation_invariant_for_non_commuting_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    base = frechet_distance(m1, s1, m2, s2)
    rotated = frechet_distance(q @ m1, q @ s1 @ q.T, q @ m2, q @ s2 @ q.T)
    assert base > 0 and rotated == pytest.approx(base, rel=1e-6)
    # Tr(sqrt(s1 s2)) written through the symmetric form sqrt(s1^1/2 s2 s1^1/2)
    from scipy.linalg import sqrtm

    r = np.real(sqrtm(s1))
    expected = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2) - 2 * np.trace(np.real(sqrtm(r @ s2 @ r)))
    assert base == pytest.approx(expected, rel=1e-6)


def test_fad_from_samples_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    m1, m2 = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.5])
    s1, s2 = np.diag([1.0, 2.0, 0.5]), np.diag([2.0, 1.0, 0.5])
    x = rng.multivariate_normal(m1, s1, size=20000)
    y = rng.multivariate_normal(m2, s2, size=20000)
    assert fad(x, y) == pytest.approx(frechet_distance(m1, s1, m2, s2), rel=0.05)
    mu, cov = gaussian_stats(x)
    assert np.allclose(mu, m1, atol=0.05) and np.allclose(cov, s1, atol=0.1)
    with pytest.raises(ValueError):
        gaussian_stats(x[:1])


def test_singular_covariances_stay_finite():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(3, 16)), rng.normal(size=(3, 16)) + 1  # fewer samples than dimensions
    value = fad(x, y)
    assert math.isfinite(value) and value > 0


def test_tiny_clap_embeds_text_and_audio(make_cfg):
    from tagtune.tta.clap import ClapEmbedder

    cfg = make_cfg()
    emb = ClapEmbedder(cfg.evaluate, cfg.device)
    t = emb.embed_texts(["calm piano", "loud drums and guitar"])
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.1, size=16000).astype(np.float32)
    a = emb.embed_audio([(noise, 16000), (np.sin(np.arange(32000) / 5).astype(np.float32) * 0.5, 32000)])
    assert t.shape == a.shape == (2, 32)
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5) and np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.allclose(a[:1], emb.embed_audio([(noise, 16000)]), atol=1e-5)  # deterministic, batch-independent
    assert emb.sample_rate == 16000  # the tiny CLAP; the released checkpoints take 48 kHz


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, tiny_backend, tta_prompts):
    """Two rendered directories (another seed and temperature for the reference), made once."""
    from tagtune.tta.generate import generate

    base = tmp_path_factory.mktemp("eval")
    prompts = write_jsonl(base / "prompts.jsonl", tta_prompts)
    dirs = []
    for name, extra in (("gen", {}), ("ref", {"seed": 7, "generation.temperature": 1.5})):
        cfg = compose_command(GENERATE, COMMANDS, preset="quick_test", updates={
            "generate.input": str(prompts), "generate.output": str(base / name), "device": "cpu",
            "generation.duration": 0.2, **extra})
        dirs.append(generate(cfg, backend=tiny_backend).output_dir)
    return tuple(dirs)


def test_evaluate_writes_scores_and_summary(make_cfg, rendered):
    from tagtune.tta.evaluate import evaluate

    out, ref = rendered
    res = evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__output=str(out.parent / "ev1")))
    assert res.fad is None and "reference" in res.fad_note
    with open(res.scores_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [list(r) for r in rows[:1]] == [["id", "file_name", "clap", "fad_tiny"]] and len(rows) == 6
    assert all(r["fad_tiny"] == "" for r in rows)  # no reference: no per-clip FAD
    assert all(-1 <= float(r["clap"]) <= 1 for r in rows)
    assert res.scores_csv == out.parent / "ev1" / "clap_scores.csv"
    assert np.mean([float(r["clap"]) for r in rows]) == pytest.approx(res.clap_mean, abs=1e-5)
    summary = json.loads(res.summary_json.read_text(encoding="utf-8"))
    assert summary["clips"] == 6 and summary["clap_model"] == "tiny"
    assert all(v["value"] is None and "reference" in v["note"] for v in summary["fad"].values())

    with_ref = evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__reference=str(ref / "audio"),
                                 evaluate__output=str(out.parent / "ev2")))
    assert with_ref.fad is not None and with_ref.fad > 0 and with_ref.reference_clips == 6
    tiny = with_ref.fads["tiny"]  # the standard-backbone FAD beside the CLAP one, with n and the backbone id
    assert tiny["value"] > 0 and tiny["n"] == 6 and tiny["n_reference"] == 6 and tiny["backbone"] and "fad_inf" in tiny
    assert with_ref.fads["clap"]["n"] == 6 and "too few" in with_ref.fads["clap"]["fad_inf"]["note"]  # 6 clips, 32 dims
    assert np.isfinite(tiny["fad_inf"]["value"]) and len(tiny["fad_inf"]["points"]) >= 3  # frames: enough to fit
    manifest = json.loads((out.parent / "ev2" / "eval_manifest.json").read_text(encoding="utf-8"))
    assert manifest["n"] == {"clips": 6, "reference_clips": 6} and manifest["fad_backbones"] == ["clap", "tiny"]
    assert {m["id"] for m in manifest["models"]} >= {"tiny", tiny["backbone"]} and manifest["packages"]["torch"]
    assert manifest["self_test"]["text_mean_cosine"] < 0.98
    with open(out.parent / "ev2" / "clap_scores.csv", newline="", encoding="utf-8") as fh:
        assert all(float(r["fad_tiny"]) >= 0 for r in csv.DictReader(fh))  # per-clip FAD for finding outliers
    assert with_ref.clap_mean == pytest.approx(res.clap_mean)
    assert (out.parent / "ev2" / "clap_scores.csv").is_file()
    self_fad = evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__reference=str(out / "audio"),
                                 evaluate__output=str(out.parent / "ev3")))
    assert self_fad.fad == pytest.approx(0.0, abs=1e-6)


def test_evaluate_refuses_unmerged_parts_and_missing_files(make_cfg, rendered, tmp_path):
    import shutil

    from tagtune.errors import InputError
    from tagtune.tta.evaluate import evaluate

    out = shutil.copytree(rendered[0], tmp_path / "copy")
    (out / "audio" / "jazz.wav").unlink()
    with pytest.raises(InputError, match="field 'file_name': audio file audio/jazz.wav does not exist"):
        evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out)))
    (out / "metadata.jsonl").rename(out / "metadata.shard-00000-of-00002.jsonl")
    with pytest.raises(InputError, match="tagtune tta merge"):
        evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out)))


def test_a_backbone_whose_package_is_missing_is_reported_unavailable(make_cfg, rendered, monkeypatch):
    from tagtune.tta.backbones import Pann
    from tagtune.tta.evaluate import evaluate

    monkeypatch.setattr(Pann, "requires", ("tagtune_no_such_package",))
    out, ref = rendered
    res = evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__reference=str(ref / "audio"),
                            evaluate__output=str(out.parent / "ev4"), evaluate__fad__backbones=["pann", "tiny"]))
    assert res.fads["pann"]["value"] is None and res.fads["tiny"]["value"] > 0  # the others still run
    assert res.fads["pann"]["note"] == ("unavailable: the FAD backbone 'pann' needs tagtune_no_such_package, which is not "
                                        "installed (hint: pip install 'tagtune[eval]', or choose another FAD backbone "
                                        "(evaluate.fad.backbones))")


def test_kl_divergence_closed_forms():
    from tagtune.tta.kld import kl

    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.25, 0.25, 0.5])
    assert kl(p, p) == pytest.approx(0.0, abs=1e-5)
    assert kl(p, q) == pytest.approx(math.log(2), abs=1e-4)  # 2 * 0.5 * log(0.5 / 0.25)
    assert kl(q, p) > 5  # mass where the other side has none: large, but finite (epsilon)


def test_kld_pairs_clips_by_id_and_is_recorded(make_cfg, rendered, tmp_path):
    """evaluate.kld.classifier=tiny (the offline stand-in): paired KLD over clips of the same id, the
    distribution-level one beside it, both in the summary and the manifest."""
    import shutil

    from tagtune.tta.evaluate import evaluate

    out, ref = rendered

    def run(reference, name):
        return evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__reference=str(reference),
                                 evaluate__output=str(tmp_path / name), evaluate__kld__classifier="tiny"))

    import soundfile as sf

    tones = tmp_path / "tones"  # a reference that sounds nothing like the generated noise, under the same ids
    tones.mkdir()
    for i, clip in enumerate(sorted((ref / "audio").iterdir())):
        info = sf.info(clip)
        t = np.arange(info.frames) / info.samplerate
        sf.write(tones / clip.name, 0.5 * np.sin(2 * np.pi * (200 + 150 * i) * t), info.samplerate)
    res = run(tones, "k1")
    assert res.kld["pairs"] == 6 and res.kld["unpaired"] == 0 and res.kld["value"] > 0 and res.kld["kld_qp"] > 0
    assert res.kld["distribution"] >= 0 and res.kld["classifier"] == "tiny"
    summary = json.loads(res.summary_json.read_text(encoding="utf-8"))
    assert summary["kld"]["value"] == pytest.approx(res.kld["value"])
    manifest = json.loads((tmp_path / "k1" / "eval_manifest.json").read_text(encoding="utf-8"))
    assert manifest["kld_classifier"] == "tiny" and "kld" in manifest["metrics"]
    assert any(m["role"] == "KLD classifier" for m in manifest["models"])
    # a clip against itself: 0, less the epsilon of 527 labels (~ -527e-6, as in audiocraft's KLD)
    assert run(out / "audio", "k2").kld["value"] == pytest.approx(0.0, abs=1e-3)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    for clip in tones.iterdir():
        shutil.copy(clip, renamed / f"other-{clip.name}")
    unpaired = run(renamed, "k3").kld
    assert unpaired["value"] is None and unpaired["pairs"] == 0 and unpaired["distribution"] > 0
    assert "only the distribution-level" in unpaired["note"]


def test_passt_kld_without_its_package_or_weights_is_unavailable_in_one_line(make_cfg, rendered, tmp_path, monkeypatch):
    from tagtune.tta.evaluate import evaluate
    from tagtune.tta.passt import Passt

    out, ref = rendered

    def run(name, **extra):
        return evaluate(make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__reference=str(ref / "audio"),
                                 evaluate__output=str(tmp_path / name), evaluate__kld__classifier="passt", **extra))

    monkeypatch.setattr(Passt, "requires", ("tagtune_no_such_package",))
    res = run("p1")
    assert res.kld["value"] is None and res.kld["note"].startswith("unavailable: the FAD backbone 'passt' needs")
    assert res.fads["tiny"]["value"] > 0  # the other metrics still run
    monkeypatch.setattr(Passt, "requires", ())
    res = run("p2", evaluate__fad__passt_weights=str(tmp_path / "missing.pt"))
    assert res.kld["note"].startswith("unavailable: PaSST weights not found at") and "\n" not in res.kld["note"]


def test_passt_front_end_puts_a_tone_in_its_mel_band():
    from tagtune.tta.passt import RATE, kaldi_mel_banks, log_mel, windows

    banks = kaldi_mel_banks()
    assert banks.shape == (128, 513) and np.all(banks.sum(axis=1) > 0) and not banks[:, -1].any()
    tone = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32)
    spec = log_mel(tone)
    assert spec.shape == (128, 1 + (RATE - 1) // 320)  # pre-emphasis takes a sample, a centred STFT adds a frame
    centre_hz = 700 * np.expm1(np.linspace(0, 1127 * np.log1p(15000 / 700), 130)[1:-1] / 1127)
    assert abs(centre_hz[int(np.argmax(spec.mean(axis=1)))] - 1000) < 60
    assert [len(w) for w in windows(np.zeros(int(10.1 * RATE)))] == [10 * RATE]  # a 0.1 s tail is dropped


def test_normalize_lufs_brings_every_clip_to_the_target_before_scoring(make_cfg, rendered, tmp_path):
    from tagtune.tta.evaluate import evaluate, read_for_scoring
    from tagtune.tta.loudness import integrated

    out, _ = rendered
    cfg = make_cfg("x", command=EVALUATE, evaluate__input=str(out), evaluate__output=str(tmp_path / "n"),
                   evaluate__normalize_lufs=-23.0)
    clip = next((out / "audio").glob("calm.wav"))
    audio, rate = read_for_scoring(clip, cfg.evaluate)
    assert integrated(audio[None], rate) == (pytest.approx(-23.0, abs=0.05), False)  # 0.2 s clips: ungated
    res = evaluate(cfg)
    summary = json.loads(res.summary_json.read_text(encoding="utf-8"))
    manifest = json.loads((tmp_path / "n" / "eval_manifest.json").read_text(encoding="utf-8"))
    assert summary["normalize_lufs"] == manifest["normalize_lufs"] == -23.0 and summary["clap_dtype"] == "float32"
    assert manifest["models"][0]["requested_revision"] == cfg.evaluate.revision


def test_clap_is_pinned_and_runs_in_bfloat16_only_where_the_gpu_has_it(monkeypatch):
    import torch

    from tagtune.tta import clap

    ev = compose_command(EVALUATE, COMMANDS, []).evaluate
    assert ev.clap_model == "laion/clap-htsat-unfused" and re.fullmatch(r"[0-9a-f]{40}", ev.revision)
    alt = compose_command(EVALUATE, COMMANDS, ["evaluation=tta_music_speech"]).evaluate
    assert alt.clap_model == "laion/larger_clap_music_and_speech" and alt.dtype == ev.dtype
    assert clap.clap_dtype("auto", "cpu") == torch.float32 and clap.clap_dtype("bfloat16", "cpu") == torch.float32
    monkeypatch.setattr(clap, "bf16_native", lambda device: device == "cuda:0")
    assert clap.clap_dtype("auto", "cuda:0") == torch.bfloat16  # an Ampere-or-newer GPU
    assert clap.clap_dtype("auto", "cuda:1") == torch.float32  # an older one: float32, never float16 by itself
