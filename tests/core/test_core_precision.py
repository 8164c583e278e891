"""Safe precision on real GPUs, checked on a CPU with a faked device capability.

``trainer.precision: auto`` resolves to bf16-mixed on GPUs with native bfloat16 (compute capability
8.0+), 16-mixed on older GPUs and 32-true on CPU; ``dtype: auto`` likewise picks bfloat16, float16
or float32. Explicit values are kept (16-mixed stays a choice).
"""

from __future__ import annotations

import pytest
import torch

from tagtune.config.commands import compose_command
from tagtune.models import device
from tagtune.models.device import pick_dtype, resolve_precision


@pytest.fixture
def gpu(monkeypatch):
    """A fake CUDA GPU of a given compute capability: ``gpu((8, 0))``."""

    def fake(capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)

    return fake


@pytest.mark.parametrize(("capability", "expected"), [((9, 0), "bf16-mixed"), ((8, 0), "bf16-mixed"),
                                                       ((7, 5), "16-mixed"), ((6, 1), "16-mixed")])
def test_auto_precision_follows_the_gpu(gpu, capability, expected):
    gpu(capability)
    assert resolve_precision("auto", "auto") == expected
    assert resolve_precision("auto", "gpu") == expected
    assert resolve_precision("auto", "cpu") == "32-true"  # asked to train on the CPU


def test_auto_precision_without_cuda_is_full_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto", "auto") == "32-true"


def test_explicit_precision_is_kept(gpu):
    gpu((9, 0))
    for value in ("16-mixed", "32-true", "bf16-mixed", 32):
        assert resolve_precision(value, "auto") == value


def test_auto_dtype_follows_the_gpu(gpu):
    gpu((8, 6))
    assert pick_dtype("auto", "cuda:0") is torch.bfloat16
    gpu((7, 0))
    assert pick_dtype("auto", "cuda:0") is torch.float16
    assert pick_dtype("bfloat16", "cuda:0") is torch.bfloat16  # asked for: kept
    assert pick_dtype("auto", "cpu") is torch.float32
    assert pick_dtype("bfloat16", "cpu") is torch.float32


def test_bf16_native_asks_the_device_of_the_worker(gpu, monkeypatch):
    asked = []
    gpu((8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: asked.append(index) or (8, 0))
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert device.bf16_native("cuda") and device.bf16_native("cuda:1")
    assert asked == [3, 1]


def test_training_configs_ask_for_auto_or_full_precision():
    from tagtune.caption.config import COMMANDS as CAPTION
    from tagtune.caption.config import FINETUNE
    from tagtune.vae.config import COMMANDS as VAE
    from tagtune.vae.config import TRAIN

    assert compose_command(FINETUNE, CAPTION).trainer.precision == "auto"
    assert compose_command(FINETUNE, CAPTION, preset="conceptcaps").trainer.precision == "auto"
    assert compose_command(FINETUNE, CAPTION, ["trainer.precision=16-mixed"]).trainer.precision == "16-mixed"
    assert compose_command(TRAIN, VAE).trainer.precision == "32-true"  # a small MLP on the CPU


def _trainer_precision(monkeypatch, tmp_path, overrides):
    """The precision ``build_trainer`` hands to ``lightning.Trainer`` (the Trainer itself is not built)."""
    import lightning

    from tagtune.caption.config import COMMANDS, FINETUNE
    from tagtune.models.training import build_trainer

    seen = {}
    monkeypatch.setattr(lightning, "Trainer", lambda **kwargs: seen.update(kwargs) or kwargs)
    build_trainer(compose_command(FINETUNE, COMMANDS, ["logger=none", *overrides]), tmp_path)
    return seen["precision"]


def test_build_trainer_resolves_auto_at_run_time(gpu, monkeypatch, tmp_path):
    gpu((9, 0))
    assert _trainer_precision(monkeypatch, tmp_path, []) == "bf16-mixed"
    gpu((7, 0))
    assert _trainer_precision(monkeypatch, tmp_path, []) == "16-mixed"
    assert _trainer_precision(monkeypatch, tmp_path, ["trainer.precision=16-mixed"]) == "16-mixed"


def test_build_trainer_on_cpu_trains_in_full_precision(monkeypatch, tmp_path):
    from tagtune.caption.config import COMMANDS, FINETUNE
    from tagtune.models.training import build_trainer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trainer = build_trainer(compose_command(FINETUNE, COMMANDS, ["logger=none", "trainer.accelerator=cpu"]), tmp_path)
    assert str(trainer.precision) == "32-true"
