"""``tagtune vae train``: fit the beta-VAE with Lightning and write the model directory.

:func:`train` takes the typed config of ``vae train`` and does everything the command does:
read and split the data, build the model from ``model.*`` and ``loss.*``, fit it with the
shared Lightning trainer (:mod:`tagtune.models.training`: checkpoints with ``last.ckpt``, early stopping,
progress to the reporter, CSV logger, resume, interrupt and divergence rules), reload the best checkpoint, encode the training sets once more to store the
aggregate posterior that sampling draws latents from, and write the self-contained directory
(see :mod:`tagtune.vae.modeldir`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.config.saved import prepare_run_dir
from tagtune.config.typed import replace
from tagtune.errors import ConfigError, InputError
from tagtune.files.resumable import atomic_write_json
from tagtune.models.device import torch_threads
from tagtune.models.training import build_trainer, claim_run_dir, fit, quiet_lightning
from tagtune.report import SILENT, Reporter
from tagtune.vae.config import TrainConfig, VaeModel
from tagtune.vae.data import TensorBatches, VAEData, load_vae_data
from tagtune.vae.modeldir import WEIGHTS, save_model_dir


@dataclass
class TrainResult:
    """Where the model went and what training measured."""

    model_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)


def _epoch_sync_callback(batches: Any) -> Any:
    """Keep the loader's shuffling tied to the trainer's epoch (so a resumed run reshuffles alike)."""
    from lightning.pytorch.callbacks import Callback

    class _EpochSync(Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            batches.epoch = trainer.current_epoch

    return _EpochSync()


def _architecture(m: VaeModel, data: VAEData) -> dict[str, Any]:
    from tagtune.vae.model import Architecture

    observed = int(data.train.sum(axis=1).max())
    max_size = m.max_set_size or observed
    if max_size < observed:
        raise ConfigError(f"model.max_set_size={max_size} is smaller than the largest training set ({observed} tags)",
                          key="model.max_set_size")
    return Architecture(
        num_tags=len(data.taxonomy), latent_dim=m.latent_dim, hidden_dim=m.hidden_dim, num_layers=m.num_layers,
        dropout=m.dropout, batch_norm=m.batch_norm, max_set_size=min(max_size, len(data.taxonomy)),
    ).to_dict()


def _without_validation(cfg: TrainConfig) -> TrainConfig:
    """A copy of cfg in which nothing monitors val/loss (there is no validation split)."""
    return replace(cfg, {"callbacks.early_stopping.enabled": False, "callbacks.model_checkpoint.monitor": None})


def _load_best(module: Any, trainer: Any) -> str | None:
    """Load the best checkpoint's weights (safe loading: tensors only); returns its path."""
    import torch

    cb = getattr(trainer, "checkpoint_callback", None)
    best = getattr(cb, "best_model_path", "") if cb is not None else ""
    if not best or not Path(best).is_file() or getattr(cb, "monitor", None) is None:
        return None
    ckpt = torch.load(best, map_location="cpu", weights_only=True)
    module.load_state_dict(ckpt["state_dict"])
    return best


def _scalar(metrics: dict[str, Any], key: str) -> float | None:
    value = metrics.get(key)
    return None if value is None else round(float(value), 5)


def train(cfg: TrainConfig, reporter: Reporter = SILENT) -> TrainResult:
    """Train the beta-VAE described by ``cfg`` into ``train.output``.

    A rerun into the same directory resumes an unfinished run from its ``last.ckpt``; a finished
    one is refused unless ``train.resume`` names a checkpoint to continue from.

    Returns:
        The model directory and the training metrics also saved to ``metrics.json``.

    Raises:
        InputError: Unreadable data or too few training rows; a missing ``train.resume``.
        OutputError: The directory already holds a trained model.
        Diverged: The loss became NaN or infinite.
    """
    quiet_lightning()
    started = time.perf_counter()
    run_dir = Path(cfg.train.output).expanduser()
    resume = claim_run_dir(run_dir, WEIGHTS, "trained model", cfg.train.resume, "train.resume")
    data = load_vae_data(cfg.data)
    for line in data.report:
        reporter.note(line)
    if len(data.train) < 2:
        raise InputError(f"only {len(data.train)} training row(s) after the split; need at least 2", data.dataset.source,
                         hint="add data or lower data.val_fraction / data.test_fraction")
    prepare_run_dir(cfg, run_dir)
    if resume:
        reporter.note(f"resuming from {resume}")
    with torch_threads(cfg.model.threads):
        return _fit(cfg, data, run_dir, resume, reporter, started)


def _module(cfg: TrainConfig, data: VAEData) -> Any:
    from tagtune.vae.lightning_module import VAEModule

    m, loss = cfg.model, cfg.loss
    return VAEModule(
        _architecture(m, data), beta=m.beta, learning_rate=m.learning_rate, weight_decay=m.weight_decay,
        bce_weight=loss.bce_weight, kld_weight=loss.kld_weight, size_weight=loss.size_weight, free_bits=loss.free_bits,
        kl_warmup_epochs=loss.kl_warmup_epochs,
    )


def _fit(cfg: TrainConfig, data: VAEData, run_dir: Path, resume: str | None, reporter: Reporter, started: float) -> TrainResult:
    """Everything after the data is read: model, Lightning fit, best weights, model directory."""
    import lightning as L
    import torch

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = _module(cfg, data)
    train_batches = TensorBatches(data.train, cfg.data.batch_size, shuffle=True, seed=cfg.seed)
    has_val = len(data.val) > 0
    val_batches = TensorBatches(data.val, max(cfg.data.batch_size, len(data.val)), shuffle=False) if has_val else None
    trainer = build_trainer(cfg if has_val else _without_validation(cfg), run_dir, reporter, "epoch",
                            callbacks=[_epoch_sync_callback(train_batches)], **({} if has_val else {"limit_val_batches": 0}))
    fit_started = time.perf_counter()
    fit(trainer, module, train_batches, val_batches, resume)
    fit_seconds = time.perf_counter() - fit_started
    last = dict(trainer.callback_metrics.items())
    module.cpu()  # trained on a GPU (trainer.accelerator=gpu) or not, the model dir holds CPU tensors
    best_path = _load_best(module, trainer)
    module.eval()
    with torch.no_grad():
        mu, logvar = module.vae.encode(torch.as_tensor(data.train))
    save_model_dir(run_dir, module.vae, data.taxonomy, mu, logvar)
    metrics = _metrics(trainer, last, best_path, run_dir, resume, fit_seconds, started, module, data)
    # the timings are returned (and printed) but not saved: identical runs give identical model folders
    atomic_write_json(run_dir / "metrics.json", {k: v for k, v in metrics.items() if k not in TIMINGS})
    return TrainResult(run_dir, metrics)


TIMINGS = ("fit_seconds", "total_seconds")


def _metrics(trainer: Any, last: dict[str, Any], best_path: str | None, run_dir: Path, resume: str | None,
             fit_seconds: float, started: float, module: Any, data: VAEData) -> dict[str, Any]:
    cb = trainer.checkpoint_callback
    best_score = getattr(cb, "best_model_score", None) if cb is not None else None
    stopper = getattr(trainer, "early_stopping_callback", None)
    if best_path is not None and Path(best_path).is_relative_to(run_dir):
        best_path = str(Path(best_path).relative_to(run_dir))
    return {
        "epochs": int(trainer.current_epoch),
        "global_steps": int(trainer.global_step),
        "stopped_early": bool(stopper is not None and getattr(stopper, "stopped_epoch", 0) > 0),
        **{f"{split}_{name}": _scalar(last, f"{split}/{name}") for split in ("train", "val") for name in ("loss", "bce", "kld")},
        "best_val_loss": None if best_score is None else round(float(best_score), 5),
        "best_checkpoint": best_path,
        "resumed_from": resume,
        "fit_seconds": round(fit_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "architecture": module.vae.arch.to_dict(),
        "dataset": data.summary(),
    }
