"""Fine-tuning pieces: LR schedule, LoRA wrapping, quantization plan, a short in-process run."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tagtune.caption.config import COMMANDS, FINETUNE, INFER, Lora, llm_model
from tagtune.caption.model import quantization_plan
from tagtune.caption.module import make_scheduler
from tagtune.caption.train import build_peft_model
from tagtune.config.commands import compose_command
from tagtune.errors import ConfigError, DependencyError


def lr_lambda(name: str, warmup_ratio: float, total: int):
    """The LR multiplier of ``make_scheduler``'s schedule at a step (base LR 1.0)."""
    import torch

    def at(step: int) -> float:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = make_scheduler(opt, name, warmup_ratio, total)
        return sched.lr_lambdas[0](step)

    return at


def test_schedules_warm_up_then_decay():
    cos = lr_lambda("cosine", 0.1, 100)
    assert cos(0) < cos(5) < cos(9) <= 1.0
    assert cos(10) == pytest.approx(1.0)
    assert cos(55) == pytest.approx(0.5, abs=0.02)
    assert cos(100) == pytest.approx(0.0, abs=1e-9)
    lin = lr_lambda("linear", 0.0, 10)
    assert [round(lin(s), 2) for s in (0, 5, 10)] == [1.0, 0.5, 0.0]
    assert lr_lambda("constant", 0.5, 10)(9) == 1.0
    assert lr_lambda("constant", 0.5, 10)(0) < 1.0  # it warms up too


def test_unknown_schedule_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"scheduler\.name: expected one of cosine, linear, constant, got 'exponential'") as info:
        compose_command(FINETUNE, COMMANDS, ["scheduler.name=exponential"])
    assert info.value.key == "scheduler.name"


def _model(enabled: bool, required: bool = False):
    """The tiny model's settings, named ``m``, with 4-bit quantization asked for or not."""
    model = llm_model(compose_command(INFER, COMMANDS, preset="quick_test").model)
    return dataclasses.replace(model, name="m", quantization=dataclasses.replace(model.quantization, enabled=enabled,
                                                                                 required=required))


def test_quantization_plan():
    cfg = _model(enabled=True)
    assert quantization_plan(cfg, cuda=True) == (True, None)
    quantize, note = quantization_plan(cfg, cuda=False)
    assert not quantize and "unquantized" in note and "\n" not in note
    assert quantization_plan(_model(enabled=False), cuda=False) == (False, None)
    with pytest.raises(DependencyError, match="quantization.required"):
        quantization_plan(_model(enabled=True, required=True), cuda=False)


def _lora(target_modules: list[str]) -> Lora:
    return Lora(r=4, lora_alpha=8.0, lora_dropout=0.0, target_modules=target_modules, bias="none")


@pytest.fixture
def fresh_tiny(tiny_loaded):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_loaded.path)


def test_lora_freezes_the_base_and_targets_the_named_modules(fresh_tiny):
    model = build_peft_model(fresh_tiny, _lora(["q_proj", "v_proj"]), quantized=False, gradient_checkpointing=False)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == {"q_proj", "v_proj"}


def test_unknown_target_modules_is_a_config_error(fresh_tiny):
    with pytest.raises(ConfigError, match="target_modules"):
        build_peft_model(fresh_tiny, _lora(["wq", "wv"]), quantized=False, gradient_checkpointing=False)


def test_short_finetune_changes_lora_weights_and_lowers_loss(caption_cfg, tmp_path):
    from safetensors.torch import load_file

    from tagtune.caption.train import finetune
    from tagtune.report import CaptureReporter

    cfg = caption_cfg(FINETUNE, "data.limit=64", "trainer.max_epochs=2", "callbacks.progress_bar.enabled=false",
                      "finetune.sample_captions=1", "logger=none")
    reporter = CaptureReporter()
    res = finetune(cfg, reporter)
    assert res.train_loss_epochs[-1] < res.train_loss_epochs[0]
    assert res.val_perplexity == pytest.approx(math.exp(res.val_loss))
    weights = load_file(tmp_path / "run" / "adapter_model.safetensors")
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())
    assert res.sample_captions and res.sample_captions[0]["caption"]
    assert res.output_dir == str(tmp_path / "run")  # finetune.output defaults to paths.output_dir
    assert any(n.startswith("LoRA: ") and "trainable" in n for n in reporter.notes)
    assert any(n.startswith("sample [") for n in reporter.notes)
