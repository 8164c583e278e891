"""LoRA / QLoRA fine-tuning of the caption LLM with Lightning: ``tagtune caption finetune``.

The base model stays frozen; a PEFT LoRA adapter learns to write the caption that follows a
rendered tag prompt (loss on the caption tokens only). Lightning supplies precision, gradient
accumulation and clipping, checkpointing, early stopping and resuming (``ckpt_path``), all from
the trainer/callbacks configs. Checkpoints hold the adapter and optimizer state only, never the
base weights. Each validation epoch logs loss, perplexity and a few generated captions; the
adapter of the best validation epoch is what lands in the output directory, as safetensors
with its config, the tokenizer, ``config.yaml`` and ``metrics.json``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError


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


def _lightning_module_class() -> type:
    import lightning as L
    import torch

    class CaptionLoRAModule(L.LightningModule):
        """Wraps a PEFT causal LM: token-weighted validation loss, best-adapter tracking, samples."""

        def __init__(self, model: Any, optim_cfg: Mapping[str, Any], sched_cfg: Mapping[str, Any],
                     sampler: Any = None, sample_items: list[Any] | None = None):
            super().__init__()
            self.model = model
            self.optim_cfg = dict(optim_cfg)
            self.sched_cfg = dict(sched_cfg)
            self.sampler = sampler
            self.sample_items = sample_items or []
            self.strict_loading = False  # checkpoints hold the adapter only
            self.step_losses: list[float] = []
            self.epoch_losses: list[float] = []
            self._epoch_sum = 0.0
            self._epoch_n = 0
            self._val_sum = 0.0
            self._val_tokens = 0
            self.val_history: list[dict[str, Any]] = []
            self.best_val = math.inf
            self.best_state: dict[str, Any] | None = None

        def forward(self, **batch: Any) -> Any:
            return self.model(**batch)

        def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
            loss = self.model(**batch).loss
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {self.global_step}")
            self.step_losses.append(value)
            self._epoch_sum += value
            self._epoch_n += 1
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=batch["input_ids"].shape[0])
            return loss

        def on_train_epoch_end(self) -> None:
            if self._epoch_n:
                self.epoch_losses.append(self._epoch_sum / self._epoch_n)
                self.log("train/epoch_loss", self.epoch_losses[-1])
            self._epoch_sum, self._epoch_n = 0.0, 0

        def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
            loss = self.model(**batch).loss
            tokens = int((batch["labels"][:, 1:] != -100).sum())
            self._val_sum += float(loss.detach()) * tokens
            self._val_tokens += tokens

        def on_validation_epoch_end(self) -> None:
            if not self._val_tokens:
                return
            val = self._val_sum / self._val_tokens
            self._val_sum, self._val_tokens = 0.0, 0
            ppl = math.exp(min(val, 50.0))
            self.log("val/loss", val, prog_bar=True, sync_dist=True)
            self.log("val/perplexity", ppl, sync_dist=True)
            if self.trainer.sanity_checking:
                return
            entry: dict[str, Any] = {"epoch": int(self.current_epoch), "step": int(self.global_step),
                                     "val_loss": val, "val_perplexity": ppl}
            if val < self.best_val:
                self.best_val = val
                self.best_state = {n: p.detach().to("cpu", copy=True) for n, p in self.model.named_parameters() if p.requires_grad}
            if self.sampler is not None and self.sample_items and self.global_rank == 0:
                captions, _ = self.sampler.generate(self.sample_items)
                entry["samples"] = [{"id": it.id, "tags": it.tags, "caption": c} for it, c in zip(self.sample_items, captions, strict=True)]
                for s in entry["samples"]:
                    self.print(f"  epoch {self.current_epoch} sample [{', '.join(s['tags'])}] -> {s['caption'][:160]}")
            self.val_history.append(entry)

        def configure_optimizers(self) -> Any:
            params = [p for p in self.model.parameters() if p.requires_grad]
            opt = torch.optim.AdamW(
                params, lr=float(self.optim_cfg["lr"]), weight_decay=float(self.optim_cfg.get("weight_decay", 0.0)),
                betas=tuple(self.optim_cfg.get("betas", (0.9, 0.999))),
            )
            total = max(1, int(self.trainer.estimated_stepping_batches))
            sched = lr_lambda(str(self.sched_cfg.get("name", "cosine")), float(self.sched_cfg.get("warmup_ratio", 0.0)), total)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, sched), "interval": "step"}}

        def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
            keep = {n for n, p in self.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    return CaptionLoRAModule


def lr_lambda(name: str, warmup_ratio: float, total_steps: int) -> Any:
    """Learning-rate multiplier per optimisation step: linear warm-up, then cosine/linear/constant."""
    if name not in ("cosine", "linear", "constant"):
        raise ConfigError(f"unknown scheduler.name '{name}'; choose cosine, linear or constant")
    warmup = int(round(total_steps * max(0.0, warmup_ratio)))

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / (warmup + 1)
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if name == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_peft_model(model: Any, lora_cfg: Mapping[str, Any], quantized: bool, gradient_checkpointing: bool,
                     adapter: str | None = None) -> Any:
    """Freeze the base model and add (or reload, trainable) the LoRA adapter."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from tagtune.caption.model import attach_adapter

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")  # peft calls a deprecated name
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if adapter:
        return attach_adapter(model, adapter, trainable=True)
    targets = lora_cfg.get("target_modules")
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=int(lora_cfg["r"]),
        lora_alpha=int(lora_cfg["lora_alpha"]),
        lora_dropout=float(lora_cfg.get("lora_dropout", 0.0)),
        target_modules=list(targets) if targets and not isinstance(targets, str) else targets,
        bias=str(lora_cfg.get("bias", "none")),
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise ConfigError(
            f"cannot add LoRA to this model: {' '.join(str(exc).split())[:200]}",
            hint="set lora.target_modules to module names of the model (e.g. [q_proj, v_proj] for Llama-style models)",
        ) from exc


def _save_adapter(peft_model: Any, tokenizer: Any, run_dir: Path) -> None:
    """Write adapter + tokenizer into a temp dir, then move the files into ``run_dir``."""
    tmp = Path(tempfile.mkdtemp(prefix=".adapter.", suffix=".tmp", dir=run_dir))
    try:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        # The weights file goes last: once it exists, the rest of the adapter directory does too.
        for item in sorted(tmp.iterdir(), key=lambda p: p.name == "adapter_model.safetensors"):
            target = run_dir / item.name
            if item.is_dir():
                if target.exists():
                    shutil.rmtree(target)
                os.replace(item, target)
            else:
                os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _loaders(cfg: Any, train_ex: list[Any], val_ex: list[Any], pad_id: int) -> tuple[Any, Any]:
    import torch
    from torch.utils.data import DataLoader

    from tagtune.caption.data import Collator

    collate = Collator(pad_id)
    bs = int(cfg.data.batch_size)
    workers = int(cfg.data.get("num_workers") or 0)
    gen = torch.Generator().manual_seed(int(cfg.seed))
    train = DataLoader(train_ex, batch_size=bs, shuffle=True, collate_fn=collate, num_workers=workers, generator=gen)
    val = DataLoader(val_ex, batch_size=bs, shuffle=False, collate_fn=collate, num_workers=workers) if val_ex else None
    return train, val


def finetune(cfg: Any) -> FinetuneResult:
    """Fine-tune a LoRA adapter on tag/caption pairs and save it with its tokenizer and metrics.

    Args:
        cfg: A composed ``caption_fine_tuning`` config.

    Returns:
        A :class:`FinetuneResult` (also written to ``<output_dir>/metrics.json``).

    Raises:
        InputError: Unreadable data or a missing ``ckpt_path``.
        ConfigError: Bad LoRA / scheduler settings or prompts longer than ``data.max_length``.
        ModelNotFoundError: The base model (or a starting adapter) cannot be loaded.
    """
    import lightning as L
    from omegaconf import OmegaConf

    from tagtune.caption.data import TagInput, build_examples, check_examples, order_tags
    from tagtune.caption.model import (
        LoadedModel,
        check_adapter_dir,
        load_base_model,
        load_tokenizer,
        resolve_model_path,
        torch_threads,
    )
    from tagtune.resumable import atomic_write_json
    from tagtune.runs import prepare_run_dir
    from tagtune.tagsets import load_tag_dataset, split_records
    from tagtune.training import build_trainer, quiet_lightning

    start = time.perf_counter()
    quiet_lightning()
    warnings.filterwarnings("ignore", message=".*The dirpath has changed.*")  # resuming into a new -o
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not Path(str(ckpt_path)).expanduser().is_file():
        raise InputError("checkpoint to resume from does not exist", Path(str(ckpt_path)).expanduser(),
                         hint="point ckpt_path at <run>/checkpoints/last.ckpt")
    adapter = cfg.model.get("checkpoint_dir")
    if adapter:
        check_adapter_dir(adapter)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    run_dir = prepare_run_dir(cfg)

    data = load_tag_dataset(cfg.data, caption=True)
    for line in data.report():
        print(line)
    train_rec, val_rec, test_rec = split_records(data.records, float(cfg.data.val_fraction),
                                                 float(cfg.data.test_fraction), int(cfg.data.split_seed))
    path = resolve_model_path(cfg.model)
    tokenizer = load_tokenizer(cfg.model, path, padding_side="left")
    max_len = int(cfg.data.max_length)
    train_ex, skipped = build_examples(train_rec, cfg.prompt, tokenizer, data.taxonomy, max_len)
    check_examples(train_ex, skipped, "training", max_len)
    val_ex, vskipped = build_examples(val_rec, cfg.prompt, tokenizer, data.taxonomy, max_len)
    if skipped + vskipped:
        print(f"skipped {skipped + vskipped} examples whose prompt alone exceeds data.max_length={max_len}")

    model, device, quantized, notices = load_base_model(cfg.model, path, for_training=True)
    peft_model = build_peft_model(model, cfg.lora, quantized, bool(cfg.get("gradient_checkpointing", False)), adapter)
    peft_model.train()
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in peft_model.parameters())
    print(f"LoRA: {trainable:,} trainable of {total:,} parameters ({100 * trainable / max(1, total):.3f}%)")

    n_samples = int((cfg.get("validation") or {}).get("num_sample_captions", 0) or 0)
    sample_items = []
    for rec in val_rec[:n_samples]:
        tags, cats = order_tags(rec.tags, data.taxonomy)
        sample_items.append(TagInput(rec.id, tags, cats, rec.line, {}))
    module_cls = _lightning_module_class()
    module = module_cls(peft_model, cfg.optimizer, cfg.scheduler)
    if sample_items:
        holder = LoadedModel(peft_model, tokenizer, str(cfg.model.name), path, device, quantized)
        module.sampler = _ModuleSampler(module, holder, cfg.prompt, cfg.generation, int(cfg.seed))
        module.sample_items = sample_items

    train_loader, val_loader = _loaders(cfg, train_ex, val_ex, tokenizer.pad_token_id)
    overrides: dict[str, Any] = {}
    if val_loader is None:
        overrides.update(limit_val_batches=0, num_sanity_val_steps=0)
        if (cfg.get("callbacks") or {}).get("early_stopping", {}).get("enabled"):
            print("no validation split (data.val_fraction=0): early stopping and best-checkpoint selection are off")
            cfg = OmegaConf.merge(cfg, {"callbacks": {"early_stopping": {"enabled": False},
                                                      "model_checkpoint": {"monitor": None, "save_top_k": 0}}})
    trainer = build_trainer(cfg, run_dir, **overrides)
    with torch_threads(cfg.model.get("torch_threads")):
        trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader,
                    ckpt_path=str(Path(str(ckpt_path)).expanduser()) if ckpt_path else None)

    if module.best_state is not None and trainer.is_global_zero:
        params = dict(peft_model.named_parameters())
        for name, value in module.best_state.items():
            params[name].data.copy_(value.to(params[name].device))
    if trainer.is_global_zero:
        _save_adapter(peft_model, tokenizer, run_dir)
    last_val = module.val_history[-1] if module.val_history else {}
    samples = next((h["samples"] for h in reversed(module.val_history) if h.get("samples")), [])
    result = FinetuneResult(
        output_dir=str(run_dir),
        train_examples=len(train_ex), val_examples=len(val_ex), test_examples=len(test_rec),
        steps=int(trainer.global_step), epochs=int(trainer.current_epoch),
        train_loss_first=module.step_losses[0] if module.step_losses else None,
        train_loss_last=module.step_losses[-1] if module.step_losses else None,
        train_loss_epochs=module.epoch_losses,
        val_loss=last_val.get("val_loss"), val_perplexity=last_val.get("val_perplexity"),
        best_val_loss=module.best_val if math.isfinite(module.best_val) else None,
        sample_captions=samples, seconds=time.perf_counter() - start,
        trainable_parameters=trainable, total_parameters=total, quantized=quantized, notices=notices,
    )
    if trainer.is_global_zero:
        record = asdict(result)
        record["validation_history"] = module.val_history
        record["model"] = str(cfg.model.name)
        atomic_write_json(run_dir / "metrics.json", record)
    return result


class _ModuleSampler:
    """Generates validation captions with the model in eval mode, then restores its mode."""

    def __init__(self, module: Any, holder: Any, prompt_cfg: Any, gen_cfg: Any, seed: int):
        from tagtune.caption.infer import CaptionGenerator

        self.module = module
        self.holder = holder
        self.gen = CaptionGenerator(holder, prompt_cfg, gen_cfg, seed)

    def generate(self, items: list[Any]) -> tuple[list[str], float]:
        self.gen.device = self.module.device
        was_training = self.holder.model.training
        self.holder.model.eval()
        try:
            return self.gen.generate(items)
        finally:
            if was_training:
                self.holder.model.train()
