"""Tiny model build and cache, duration -> decoder steps, and the per-sample sampler."""

from __future__ import annotations

import math

import pytest


def test_tiny_musicgen_is_built_once_and_reused(tmp_path):
    import dataclasses

    from tagtune.tta.config import TinyMusicgen
    from tagtune.tta.tiny import ensure_tiny_musicgen

    tiny = TinyMusicgen(seed=3, sampling_rate=16000, cache_dir=str(tmp_path / "cache"))
    first = ensure_tiny_musicgen(tiny)
    files = {p.name for p in first.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tagtune-tiny.json"} <= files
    marker = first / "tagtune-tiny.json"
    stamp = (marker.stat().st_ino, marker.stat().st_mtime_ns)
    again = ensure_tiny_musicgen(tiny)
    assert again == first
    assert (marker.stat().st_ino, marker.stat().st_mtime_ns) == stamp  # not rebuilt
    # no temporary build folders are left behind next to it
    assert [p.name for p in first.parent.iterdir()] == [first.name]
    # another seed is another model
    other = ensure_tiny_musicgen(dataclasses.replace(tiny, seed=4))
    assert other != first and other.is_dir()


def test_tiny_musicgen_loads_offline_with_expected_shapes(tiny_backend):
    b = tiny_backend
    assert b.sample_rate == 16000 and b.channels == 1
    assert b.frame_rate == 50 and b.num_codebooks == 4 and b.delay == 3
    assert b.model.config.audio_encoder.num_quantizers == b.num_codebooks
    assert b.model.dtype.is_floating_point


@pytest.mark.parametrize(("seconds", "rate", "delay", "steps"), [
    (1.0, 50, 3, 53), (0.5, 50, 3, 28), (10.0, 50, 3, 503), (0.01, 50, 3, 4), (1.001, 50, 3, 54), (2.0, 50, 3, 103),
    (1.0, 50, 0, 50),
])
def test_duration_to_steps(seconds, rate, delay, steps):
    from tagtune.tta.backends.base import steps_for_duration

    assert steps_for_duration(seconds, rate, delay) == steps


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_duration_must_be_positive(bad):
    from tagtune.errors import ConfigError
    from tagtune.tta.backends.base import steps_for_duration

    with pytest.raises(ConfigError):
        steps_for_duration(bad, 50, 3)


def test_generated_length_matches_steps(tiny_backend):
    from tagtune.records.rows import CaptionRow
    from tagtune.tta.backends.base import SamplingParams

    params = SamplingParams(True, 1.0, 50, 0.0, 3.0)
    steps = tiny_backend.steps_for(0.7)  # 35 frames + 3
    audio = tiny_backend.generate([CaptionRow(id="a", tags=[], caption="calm piano")], [1], steps, params)
    assert audio.shape == (1, 1, tiny_backend.samples_for_steps(steps))
    assert audio.shape[-1] == 35 * 320


def _sampler(seeds, params, steps=5, rows=4):
    """The per-row seeded sampler as MusicGen uses it: ``rows`` decoder rows (codebooks) per seed."""
    from tagtune.models.sampling import RowSeededSampler

    return RowSeededSampler(seeds, steps, params.do_sample, params.temperature, params.top_k, params.top_p,
                            rows_per_seed=rows, guidance_scale=params.guidance_scale)


def test_sampler_draws_do_not_depend_on_batch_neighbours():
    import torch

    from tagtune.tta.backends.base import SamplingParams

    params = SamplingParams(True, 1.0, 0, 0.0, 1.0)
    torch.manual_seed(0)
    logits = torch.randn(3 * 4, 32)
    together = _sampler([11, 22, 33], params)(torch.zeros(12, 1, dtype=torch.long), logits.clone())
    alone = _sampler([22], params)(torch.zeros(4, 1, dtype=torch.long), logits[4:8].clone())
    assert torch.equal(together[4:8], alone)
    # one-hot rows: exactly one chosen token per row
    assert ((together == 0.0).sum(dim=1) == 1).all()
    many = [_sampler([s], params)(torch.zeros(4, 1, dtype=torch.long), logits[4:8].clone()).argmax(1) for s in range(20)]
    assert len({tuple(t.tolist()) for t in many}) > 1


def test_sampler_applies_guidance_top_k_and_greedy():
    import torch

    from tagtune.tta.backends.base import SamplingParams

    rows = 2
    cond = torch.tensor([[0.0, 5.0, 4.0, 0.0], [3.0, 0.0, 0.0, 2.9]])
    uncond = torch.tensor([[0.0, 6.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    scores = torch.cat([cond, uncond])
    greedy = _sampler([1], SamplingParams(False, 1.0, 0, 0.0, 3.0), rows=rows)(torch.zeros(rows, 1, dtype=torch.long), scores)
    # guided = uncond + 3 (cond - uncond): row 0 -> [0, 3, 12, 0] (index 2, where cond alone says 1),
    # row 1 -> [9, 0, 0, 8.7] (index 0)
    guided = uncond + 3 * (cond - uncond)
    assert greedy.shape == scores.shape
    assert greedy[:rows].argmax(1).tolist() == [2, 0]
    assert torch.equal(greedy[:rows].argmax(1), guided.argmax(1))
    assert torch.equal(greedy[:rows], greedy[rows:])  # both halves carry the same choice
    # top_k=1 sampling always picks the guided argmax whatever the seed
    for seed in range(5):
        top1 = _sampler([seed], SamplingParams(True, 1.0, 1, 0.0, 3.0), rows=rows)(torch.zeros(rows, 1, dtype=torch.long), scores)
        assert torch.equal(top1[:rows].argmax(1), guided.argmax(1))


def test_sampler_top_p_keeps_the_nucleus():
    import torch

    from tagtune.tta.backends.base import SamplingParams

    probs = torch.tensor([[0.6, 0.3, 0.05, 0.05]])
    logits = probs.log()
    chosen = set()
    for seed in range(200):
        out = _sampler([seed], SamplingParams(True, 1.0, 0, 0.8, 1.0), rows=1)(torch.zeros(1, 1, dtype=torch.long), logits.clone())
        chosen.add(int(out.argmax()))
    assert chosen == {0, 1}  # 0.6 + 0.3 >= 0.8: the tail is never drawn


def test_default_model_offline_is_one_line_quickly(monkeypatch):
    import time

    from tagtune.config.commands import compose_command
    from tagtune.errors import ModelNotFoundError
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.config import COMMANDS, GENERATE

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = compose_command(GENERATE, COMMANDS, updates={"device": "cpu"})
    assert cfg.model.name == "facebook/musicgen-small"
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        load_backend(cfg.model, cfg.device, cfg.tagmap)
    assert time.perf_counter() - start < 30
    text = str(info.value)
    assert "facebook/musicgen-small" in text and "quick_test" in text and "\n" not in text


def test_audiocraft_backend_missing_is_one_line():
    pytest.importorskip("torch")
    try:
        import audiocraft  # noqa: F401
        pytest.skip("audiocraft is installed here")
    except ImportError:
        pass
    from tagtune.config.commands import compose_command
    from tagtune.errors import DependencyError
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.config import COMMANDS, GENERATE

    cfg = compose_command(GENERATE, COMMANDS, ["model.backend=audiocraft"])
    with pytest.raises(DependencyError, match="audiocraft") as info:
        load_backend(cfg.model, "cpu", cfg.tagmap)
    assert "\n" not in str(info.value) and "tagtune[audiocraft]" in str(info.value)  # the plugins message: the extra to install
