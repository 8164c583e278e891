"""The LightningModule that trains :class:`~tagtune.vae.model.TagVAE`.

Kept apart from the network so that sampling and evaluation never import Lightning (about 3 s
of start-up). It owns the optimiser, the KL warm-up schedule and the logging of every loss term
(``train/loss``, ``val/loss``, ``*/bce``, ``*/kld``, ``*/size_ce``) per epoch.

It also stops a run that diverges without ever reaching NaN (``model.learning_rate=1e3`` ends near
1e10 with finite numbers): when the mean training loss of the epoch so far passes
:data:`DIVERGENCE_FACTOR` times the loss of the run's first step, :class:`Diverged` names
``model.learning_rate``. The check runs at every step, so the diverging epoch never reaches a
checkpoint: ``last.ckpt`` stays the last epoch that was still sane. Non-finite losses are the
shared rule of :func:`tagtune.models.training.check_loss`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from tagtune.models.training import Diverged, check_loss
from tagtune.vae.model import Architecture, TagVAE, vae_loss

#: An untrained VAE's loss is the worst a sane run sees (training only lowers it, and the KL warm-up
#: adds far less than this factor); a mean a thousand times above it is divergence, not noise.
DIVERGENCE_FACTOR = 1e3


class VAEModule(L.LightningModule):
    """Lightning wrapper: optimisation, KL warm-up and logging of the loss terms."""

    def __init__(
        self,
        arch: dict[str, Any],
        beta: float,
        learning_rate: float,
        weight_decay: float = 0.0,
        bce_weight: float = 1.0,
        kld_weight: float = 1.0,
        size_weight: float = 1.0,
        free_bits: float = 0.0,
        kl_warmup_epochs: int = 0,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.vae = TagVAE(Architecture.from_dict(arch))
        self.first_loss: float | None = None  # the run's first training loss (kept in checkpoints: resume compares alike)
        self._epoch_losses: list[float] = []

    def _kl_scale(self) -> float:
        warm = int(self.hparams.kl_warmup_epochs)
        return 1.0 if warm <= 0 else min(1.0, (self.current_epoch + 1) / warm)

    def _step(self, batch: Any, stage: str) -> torch.Tensor:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        hp = self.hparams
        terms = vae_loss(
            x, self.vae(x), beta=hp.beta, bce_weight=hp.bce_weight, kld_weight=hp.kld_weight,
            size_weight=hp.size_weight, free_bits=hp.free_bits,
            kl_scale=self._kl_scale() if stage == "train" else 1.0,
        )
        if stage == "train":
            self._guard(float(terms["loss"].detach()))
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, prog_bar=(name == "loss"), batch_size=x.shape[0])
        return terms["loss"]

    def _guard(self, loss: float) -> None:
        """Raise :class:`Diverged` for a non-finite loss or an epoch mean far above the first loss."""
        check_loss(loss, self.global_step)
        if self.first_loss is None:
            self.first_loss = loss
        self._epoch_losses.append(loss)
        mean, first = sum(self._epoch_losses) / len(self._epoch_losses), self.first_loss
        if mean > DIVERGENCE_FACTOR * max(first, 1.0):
            raise Diverged(f"training diverged: the mean training loss of epoch {self.current_epoch} reached {mean:.3g} "
                           f"at step {self.global_step}, over {DIVERGENCE_FACTOR:g} times the first loss {first:.3g} "
                           f"(model.learning_rate={self.hparams.learning_rate:g} is too high for this run)")

    def on_train_epoch_start(self) -> None:
        self._epoch_losses = []

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["tagtune_first_loss"] = self.first_loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.first_loss = checkpoint.get("tagtune_first_loss")

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.vae.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)
