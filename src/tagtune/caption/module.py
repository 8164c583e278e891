"""The LightningModule that fine-tunes a PEFT causal LM on tag/caption examples.

Kept apart from the recipe (:mod:`tagtune.caption.train`) like the VAE's: it owns the optimiser
and learning-rate schedule, the token-weighted validation loss, the best adapter weights seen so
far, and a few captions generated from validation tag sets after each validation epoch.
Checkpoints hold the adapter and optimiser state only, never the base weights.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from tagtune.caption.config import Optimizer, Scheduler
from tagtune.models.training import check_loss

# our scheduler.name -> transformers.get_scheduler's name (all of them warm up linearly first)
SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def make_scheduler(optimizer: Any, name: str, warmup_ratio: float, total_steps: int) -> Any:
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine / linear decay or constant."""
    from transformers import get_scheduler

    warmup = int(round(total_steps * max(0.0, warmup_ratio)))
    return get_scheduler(SCHEDULES[name], optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


class CaptionLoRAModule(L.LightningModule):
    """Wraps a PEFT causal LM: token-weighted validation loss, best-adapter tracking, sample captions."""

    def __init__(self, model: Any, optimizer: Optimizer, scheduler: Scheduler,
                 sampler: Any = None, sample_rows: list[Any] | None = None):
        super().__init__()
        self.model = model
        self.optim, self.sched = optimizer, scheduler
        self.sampler, self.sample_rows = sampler, sample_rows or []
        self.strict_loading = False  # checkpoints hold the adapter only
        self.step_losses: list[float] = []
        self.epoch_losses: list[float] = []
        self._epoch_sum, self._epoch_n = 0.0, 0
        self._val_sum, self._val_tokens = 0.0, 0
        self.val_history: list[dict[str, Any]] = []
        self.best_val = math.inf
        self.best_state: dict[str, Any] | None = None

    def forward(self, **batch: Any) -> Any:
        return self.model(**batch)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
        loss = self.model(**batch).loss
        value = float(loss.detach())
        check_loss(value, self.global_step)
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
        if self.sampler is not None and self.sample_rows and self.global_rank == 0:
            captions = self.sampler.generate(self.sample_rows)
            entry["samples"] = [{"id": r.id, "tags": r.tags, "caption": c} for r, c in zip(self.sample_rows, captions, strict=True)]
        self.val_history.append(entry)

    def configure_optimizers(self) -> Any:
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.optim.lr, weight_decay=self.optim.weight_decay, betas=tuple(self.optim.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = make_scheduler(opt, self.sched.name, self.sched.warmup_ratio, total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}
