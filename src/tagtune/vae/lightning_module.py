"""The LightningModule that trains :class:`~tagtune.vae.model.TagVAE`.

Kept apart from the network so that sampling and evaluation never import Lightning (about 3 s
of start-up). It owns the optimiser, the KL warm-up schedule and the logging of every loss term
(``train/loss``, ``val/loss``, ``*/bce``, ``*/kld``, ``*/size_ce``) per epoch.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from tagtune.models.training import check_loss
from tagtune.vae.model import Architecture, TagVAE, vae_loss


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
            check_loss(float(terms["loss"].detach()), self.global_step)
        for name, value in terms.items():
            self.log(f"{stage}/{name}", value, on_step=False, on_epoch=True, prog_bar=(name == "loss"), batch_size=x.shape[0])
        return terms["loss"]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.vae.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay)
