"""The beta-VAE over multi-hot tag vectors and its loss (the LightningModule is in ``lightning_module``).

An MLP encoder maps a tag set to a diagonal Gaussian ``q(z|x)``; an MLP decoder trunk maps a
latent to two heads: one logit per tag (independent Bernoulli probabilities) and a categorical
over set sizes ``0..max_set_size``. The size head exists because independent Bernoulli draws
give set sizes that are far too spread out (real sets have 3-14 tags, Bernoulli sums put 10% of
the mass on 0-2 tags); with it, sampling can draw a size first and then the tags conditioned on
that size (see :mod:`tagtune.vae.sample`). Loss:
``bce_weight * BCE + size_weight * CE(size) + kld_weight * beta * KL(q(z|x) || N(0, I))``,
with the BCE summed over tags and the KL summed over latent dimensions (per set), both averaged
over the batch; optional KL warm-up and free bits guard against posterior collapse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class Architecture:
    """Everything needed to rebuild the network; saved in the model directory."""

    num_tags: int
    latent_dim: int
    hidden_dim: int
    num_layers: int
    dropout: float
    batch_norm: bool
    max_set_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        return cls(
            num_tags=int(data["num_tags"]), latent_dim=int(data["latent_dim"]), hidden_dim=int(data["hidden_dim"]),
            num_layers=int(data["num_layers"]), dropout=float(data["dropout"]), batch_norm=bool(data["batch_norm"]),
            max_set_size=int(data["max_set_size"]),
        )


def _mlp(in_dim: int, hidden: int, layers: int, dropout: float, batch_norm: bool) -> nn.Sequential:
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        blocks.append(nn.Linear(dim, hidden))
        if batch_norm:
            blocks.append(nn.BatchNorm1d(hidden))
        blocks.append(nn.LeakyReLU(0.2))
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        dim = hidden
    return nn.Sequential(*blocks)


class TagVAE(nn.Module):
    """MLP beta-VAE with a tag head and a set-size head."""

    def __init__(self, arch: Architecture):
        super().__init__()
        if arch.num_layers < 1:
            raise ValueError("num_layers must be >= 1")
        self.arch = arch
        self.encoder = _mlp(arch.num_tags, arch.hidden_dim, arch.num_layers, arch.dropout, arch.batch_norm)
        self.to_latent = nn.Linear(arch.hidden_dim, 2 * arch.latent_dim)
        self.decoder = _mlp(arch.latent_dim, arch.hidden_dim, arch.num_layers, arch.dropout, arch.batch_norm)
        self.tag_head = nn.Linear(arch.hidden_dim, arch.num_tags)
        self.size_head = nn.Linear(arch.hidden_dim, arch.max_set_size + 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z|x)``."""
        mu, logvar = self.to_latent(self.encoder(x)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tag logits ``(B, T)`` and set-size logits ``(B, max_set_size + 1)``."""
        h = self.decoder(z)
        return self.tag_head(h), self.size_head(h)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # reparameterised, in eval too
        tag_logits, size_logits = self.decode(z)
        return {"tag_logits": tag_logits, "size_logits": size_logits, "mu": mu, "logvar": logvar, "z": z}


def vae_loss(
    x: torch.Tensor,
    out: dict[str, torch.Tensor],
    beta: float,
    bce_weight: float = 1.0,
    kld_weight: float = 1.0,
    size_weight: float = 1.0,
    free_bits: float = 0.0,
    kl_scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The loss terms (per set, batch-averaged) and their weighted sum under ``loss``.

    Args:
        x: Multi-hot targets ``(B, T)``.
        out: :meth:`TagVAE.forward` output.
        beta: The beta of the beta-VAE (weight of the KL term).
        free_bits: Nats per latent dimension that are not penalised (0 disables).
        kl_scale: KL warm-up factor in [0, 1] for the current epoch.
    """
    batch = max(x.shape[0], 1)
    bce = F.binary_cross_entropy_with_logits(out["tag_logits"], x, reduction="sum") / batch
    max_size = out["size_logits"].shape[-1] - 1
    sizes = x.sum(dim=-1).round().long().clamp(max=max_size)
    size_ce = F.cross_entropy(out["size_logits"], sizes)
    mu, logvar = out["mu"], out["logvar"]
    kld_per_dim = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).mean(dim=0)
    kld = kld_per_dim.sum()
    kld_penalised = kld_per_dim.clamp(min=free_bits).sum() if free_bits > 0 else kld
    loss = bce_weight * bce + size_weight * size_ce + kld_weight * beta * kl_scale * kld_penalised
    return {"loss": loss, "bce": bce, "size_ce": size_ce, "kld": kld}
