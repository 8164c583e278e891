"""LoRA / QLoRA fine-tuning of the caption LLM with Lightning: ``tagtune caption finetune``.

One readable recipe: read and split the pairs, load tokenizer and base model, wrap it with LoRA,
fit :class:`~tagtune.caption.module.CaptionLoRAModule` with the shared trainer
(:mod:`tagtune.models.training`: resume, interrupt and divergence rules), save the best adapter. The base model stays frozen; a PEFT LoRA adapter learns to write the caption that follows a
rendered tag prompt (loss on the caption tokens only). Lightning supplies precision, gradient
accumulation and clipping, checkpointing, early stopping and resuming (``ckpt_path``), all from
the trainer/callbacks configs. Checkpoints hold the adapter and optimizer state only, never the
base weights. Each validation epoch logs loss, perplexity and a few generated captions; the
adapter of the best validation epoch is what lands in the output directory, as safetensors
with its config, the tokenizer, ``config.yaml`` and ``metrics.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption.config import FinetuneConfig, Lora, Prompt, Sampling
from tagtune.caption.data import Collator, build_examples, check_examples
from tagtune.caption.llm import CaptionGenerator
from tagtune.caption.model import (
    ADAPTER_WEIGHTS,
    LoadedModel,
    attach_adapter,
    check_adapter_dir,
    check_quantization,
    load_base_model,
    load_tokenizer,
    resolve_model_path,
)
from tagtune.config.saved import prepare_run_dir
from tagtune.config.typed import replace, to_dict
from tagtune.errors import ConfigError
from tagtune.files.resumable import atomic_write_json, atomic_write_text
from tagtune.models.device import torch_threads
from tagtune.models.training import build_trainer, claim_run_dir, fit, quiet_lightning
from tagtune.records import licences
from tagtune.records.tagsets import load_tag_dataset, split_records
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter


@dataclass
class FinetuneResult:
    """Where the adapter went and how training went."""

    output_dir: str
    train_examples: int
    val_examples: int
    test_examples: int
    steps: int
    epochs: int
    train_loss_first: float | None
    train_loss_last: float | None
    train_loss_epochs: list[float]
    val_loss: float | None
    val_perplexity: float | None
    best_val_loss: float | None
    sample_captions: list[dict[str, Any]]
    seconds: float
    trainable_parameters: int
    total_parameters: int
    quantized: bool = False
    notices: list[str] = field(default_factory=list)


def build_peft_model(model: Any, lora: Lora, quantized: bool, gradient_checkpointing: bool,
                     adapter: str | None = None) -> Any:
    """Freeze the base model and add (or reload, trainable) the LoRA adapter."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calls a deprecated name
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if adapter:
        return attach_adapter(model, adapter, trainable=True)
    targets = lora.target_modules
    config = LoraConfig(
        task_type="CAUSAL_LM", r=lora.r, lora_alpha=lora.lora_alpha, lora_dropout=lora.lora_dropout,
        target_modules=list(targets) if targets and not isinstance(targets, str) else targets, bias=lora.bias,
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(
            f"cannot add LoRA to this model: {' '.join(str(exc).split())[:200]}", key="lora.target_modules",
            hint="set lora.target_modules to module names of the model (e.g. [q_proj, v_proj] for Llama-style models)",
        ) from exc


def _save_adapter(peft_model: Any, tokenizer: Any, run_dir: Path) -> None:
    """Write adapter + tokenizer into a temp dir, then move the files into ``run_dir``."""
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", suffix=".tmp", dir=run_dir))
    try:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        # The weights file goes last: once it exists, the rest of the adapter directory does too.
        for item in sorted(tmp.iterdir(), key=lambda p: p.name == ADAPTER_WEIGHTS):
            target = run_dir / item.name
            if item.is_dir() and target.exists():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_licence(run_dir: Path, base_model: str) -> None:
    """LICENSE.md (and NOTICE when the base model's licence asks for one) beside the adapter."""
    atomic_write_text(run_dir / "LICENSE.md", licences.adapter_licence_text(base_model))
    notices = licences.notices(licences.lookup(base_model, "base model"))
    if notices:
        atomic_write_text(run_dir / "NOTICE", "\n".join(notices) + "\n")


def _loaders(cfg: FinetuneConfig, train_ex: list[Any], val_ex: list[Any], pad_id: int) -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader

    collate, bs, workers = Collator(pad_id), cfg.data.batch_size, cfg.data.num_workers
    gen = torch.Generator().manual_seed(cfg.seed)
    train = DataLoader(train_ex, batch_size=bs, shuffle=True, collate_fn=collate, num_workers=workers, generator=gen)
    val = DataLoader(val_ex, batch_size=bs, shuffle=False, collate_fn=collate, num_workers=workers) if val_ex else None
    return train, val


@dataclass
class _Data:
    """The pairs, split and tokenized."""

    taxonomy: Taxonomy
    tokenizer: Any
    model_path: str
    train: list[Any]
    val: list[Any]
    val_rows: list[Any]
    test_rows: int


def _prepare_data(cfg: FinetuneConfig, reporter: Reporter) -> _Data:
    data = load_tag_dataset(to_dict(cfg.data), caption=True)
    for line in data.report():
        reporter.note(line)
    train_rec, val_rec, test_rec = split_records(data.records, cfg.data.val_fraction, cfg.data.test_fraction,
                                                 cfg.data.split_seed)
    path = resolve_model_path(cfg.model)
    tokenizer = load_tokenizer(cfg.model, path, padding_side="left")
    max_len = cfg.data.max_length
    train_ex, skipped = build_examples(train_rec, cfg.prompt, tokenizer, data.taxonomy, max_len)
    check_examples(train_ex, skipped, "training", max_len)
    val_ex, vskipped = build_examples(val_rec, cfg.prompt, tokenizer, data.taxonomy, max_len)
    if skipped + vskipped:
        reporter.warn(f"skipped {skipped + vskipped} examples whose prompt alone exceeds data.max_length={max_len}")
    return _Data(data.taxonomy, tokenizer, path, train_ex, val_ex, val_rec, len(test_rec))


def finetune(cfg: FinetuneConfig, reporter: Reporter = SILENT) -> FinetuneResult:
    """Fine-tune a LoRA adapter on tag/caption pairs into ``finetune.output`` (adapter, tokenizer, metrics).

    A rerun into the same directory resumes an unfinished run from its ``last.ckpt``; a finished
    one is refused unless ``finetune.resume`` names a checkpoint to continue from.

    Raises:
        InputError: Unreadable data or a missing ``finetune.resume``.
        ConfigError: Bad LoRA settings or prompts longer than ``data.max_length``.
        ModelNotFoundError: The base model (or a starting adapter) cannot be loaded.
        Diverged: The loss became NaN or infinite.
    """
    import lightning as L

    start = time.perf_counter()
    quiet_lightning()
    run_dir = Path(cfg.finetune.output).expanduser()
    resume = claim_run_dir(run_dir, ADAPTER_WEIGHTS, "trained adapter", cfg.finetune.resume, "finetune.resume")
    check_quantization(cfg.model)  # 4-bit asked for where it cannot be done: one line before anything is written
    if cfg.model.checkpoint_dir:
        check_adapter_dir(cfg.model.checkpoint_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    prepare_run_dir(cfg, run_dir)
    data = _prepare_data(cfg, reporter)
    if resume:
        reporter.note(f"resuming from {resume}")
    return _train(cfg, data, run_dir, resume, reporter, start)


def _module(cfg: FinetuneConfig, data: _Data, reporter: Reporter) -> tuple[Any, Any, bool, list[str]]:
    """The LoRA-wrapped base model inside its LightningModule; also (peft model, quantized, notices)."""
    from tagtune.caption.module import CaptionLoRAModule  # lightning and torch

    model, device, quantized, notices = load_base_model(cfg.model, data.model_path, for_training=True)
    for text in notices:
        reporter.note(text)
    peft_model = build_peft_model(model, cfg.lora, quantized, cfg.finetune.gradient_checkpointing, cfg.model.checkpoint_dir)
    peft_model.train()
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    reporter.note(f"LoRA: {trainable:,} trainable of {total:,} parameters ({100 * trainable / max(1, total):.3f}%)")
    module = CaptionLoRAModule(peft_model, cfg.optimizer, cfg.scheduler)
    if cfg.finetune.sample_captions and data.val_rows:
        holder = LoadedModel(peft_model, data.tokenizer, cfg.model.name, data.model_path, device, quantized)
        module.sampler = _ModuleSampler(module, holder, cfg.prompt, cfg.generation, cfg.seed, data.taxonomy)
        module.sample_rows = data.val_rows[:cfg.finetune.sample_captions]
    return module, peft_model, quantized, notices


def _train(cfg: FinetuneConfig, data: _Data, run_dir: Path, resume: str | None, reporter: Reporter,
           start: float) -> FinetuneResult:
    module, peft_model, quantized, notices = _module(cfg, data, reporter)
    train_loader, val_loader = _loaders(cfg, data.train, data.val, data.tokenizer.pad_token_id)
    overrides: dict[str, Any] = {}
    if val_loader is None:
        overrides.update(limit_val_batches=0, num_sanity_val_steps=0)
        if cfg.callbacks.early_stopping.enabled:
            reporter.note("no validation split (data.val_fraction=0): early stopping and best-checkpoint selection are off")
            cfg = replace(cfg, {"callbacks.early_stopping.enabled": False, "callbacks.model_checkpoint.monitor": None,
                                "callbacks.model_checkpoint.save_top_k": 0})
    trainer = build_trainer(cfg, run_dir, reporter, "step", **overrides)
    with torch_threads(cfg.model.threads):
        fit(trainer, module, train_loader, val_loader, resume)
    if module.best_state is not None and trainer.is_global_zero:
        params = dict(peft_model.named_parameters())
        for name, value in module.best_state.items():
            params[name].data.copy_(value.to(params[name].device))
    result = _result(cfg, data, run_dir, module, trainer, peft_model, quantized, notices, start)
    if trainer.is_global_zero:
        _save_adapter(peft_model, data.tokenizer, run_dir)
        _write_licence(run_dir, cfg.model.name)
        record = {**asdict(result), "validation_history": module.val_history, "model": cfg.model.name}
        atomic_write_json(run_dir / "metrics.json", record)
    for sample in result.sample_captions:
        reporter.note(f"sample [{', '.join(sample['tags'])}] -> {sample['caption'][:160]}")
    return result


def _result(cfg: FinetuneConfig, data: _Data, run_dir: Path, module: Any, trainer: Any, peft_model: Any, quantized: bool,
            notices: list[str], start: float) -> FinetuneResult:
    import math

    last_val = module.val_history[-1] if module.val_history else {}
    samples = next((h["samples"] for h in reversed(module.val_history) if h.get("samples")), [])
    return FinetuneResult(
        output_dir=str(run_dir), train_examples=len(data.train), val_examples=len(data.val), test_examples=data.test_rows,
        steps=int(trainer.global_step), epochs=int(trainer.current_epoch),
        train_loss_first=module.step_losses[0] if module.step_losses else None,
        train_loss_last=module.step_losses[-1] if module.step_losses else None,
        train_loss_epochs=module.epoch_losses, val_loss=last_val.get("val_loss"),
        val_perplexity=last_val.get("val_perplexity"),
        best_val_loss=module.best_val if math.isfinite(module.best_val) else None,
        sample_captions=samples, seconds=time.perf_counter() - start,
        trainable_parameters=sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        total_parameters=sum(p.numel() for p in peft_model.parameters()), quantized=quantized, notices=notices,
    )


class _ModuleSampler:
    """Generates validation captions with the model in eval mode, then restores its mode."""

    def __init__(self, module: Any, holder: Any, prompt: Prompt, sampling: Sampling, seed: int, taxonomy: Taxonomy):
        self.module, self.holder, self.seed = module, holder, seed
        self.gen = CaptionGenerator(holder, prompt, sampling, taxonomy)

    def generate(self, rows: list[Any]) -> list[str]:
        self.gen.device = self.module.device
        was_training = self.holder.model.training
        self.holder.model.eval()
        try:
            return self.gen.generate(rows, self.seed)
        finally:
            if was_training:
                self.holder.model.train()
