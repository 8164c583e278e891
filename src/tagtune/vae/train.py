"""``tagtune vae train``: fit the beta-VAE with Lightning and write the model directory.

:func:`train` takes the composed ``vae_training`` config and does everything the command does:
read and split the data, build the model from ``model.*`` and ``loss.*``, fit it with the
shared Lightning trainer (checkpoints with ``last.ckpt``, early stopping, rich progress bar,
CSV logger), reload the best checkpoint, encode the training sets once more to store the
aggregate posterior that sampling draws latents from, and write the self-contained directory
(see :mod:`tagtune.vae.modeldir`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import ConfigError, InputError
from tagtune.vae.data import VAEData, load_vae_data


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


def _epoch_progress_callback(max_epochs: int) -> Any:
    """One rich bar over epochs with the latest losses.

    Lightning's own RichProgressBar redraws per batch and leaves a line per epoch; with
    hundreds of 5-batch epochs it cost more time than the training itself (19 s of 22 s).
    """
    from lightning.pytorch.callbacks import Callback

    from tagtune.progress import make_progress

    class _EpochProgress(Callback):
        def __init__(self) -> None:
            self.progress: Any = None
            self.task: Any = None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.progress = make_progress("epochs")
            self.progress.start()
            self.task = self.progress.add_task("training", total=max_epochs, completed=trainer.current_epoch, rate="")

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            m = trainer.callback_metrics
            losses = "  ".join(f"{k} {float(m[k]):.3f}" for k in ("train/loss", "val/loss") if k in m)
            self.progress.update(self.task, completed=trainer.current_epoch + 1, rate=losses)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.progress is not None:
                self.progress.update(self.task, total=trainer.current_epoch, completed=trainer.current_epoch)
                self.progress.stop()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self.progress is not None:
                self.progress.stop()

    return _EpochProgress()


def _architecture(cfg: Any, data: VAEData) -> dict[str, Any]:
    from tagtune.vae.model import Architecture

    m = cfg.model
    observed = int(data.train.sum(axis=1).max())
    max_size = m.get("max_set_size") or observed
    if int(max_size) < observed:
        raise ConfigError(f"model.max_set_size={max_size} is smaller than the largest training set ({observed} tags)")
    return Architecture(
        num_tags=len(data.taxonomy), latent_dim=int(m.latent_dim), hidden_dim=int(m.hidden_dim),
        num_layers=int(m.num_layers), dropout=float(m.dropout), batch_norm=bool(m.batch_norm),
        max_set_size=min(int(max_size), len(data.taxonomy)),
    ).to_dict()


def _trainer_config(cfg: Any, has_val: bool) -> tuple[Any, bool]:
    """A copy of cfg for the shared trainer builder, and whether to show our epoch bar.

    Lightning's per-batch bar is switched off (we draw one per epoch); without a validation
    split nothing may monitor val/loss.
    """
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    show_bar = False
    if cfg.get("callbacks") and cfg.callbacks.get("progress_bar"):
        show_bar = bool(cfg.callbacks.progress_bar.get("enabled", False))
        cfg.callbacks.progress_bar.enabled = False
    if not has_val and cfg.get("callbacks"):
        if cfg.callbacks.get("early_stopping"):
            cfg.callbacks.early_stopping.enabled = False
        if cfg.callbacks.get("model_checkpoint"):
            cfg.callbacks.model_checkpoint.monitor = None
    return cfg, show_bar


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


def train(cfg: Any) -> TrainResult:
    """Train the beta-VAE described by a composed ``vae_training`` config.

    Returns:
        The model directory (``paths.output_dir``) and the training metrics also saved to
        ``metrics.json``.

    Raises:
        InputError: Unreadable data or too few training rows; a missing ``ckpt_path``.
        ConfigError: Settings that cannot work together.
    """
    import torch

    from tagtune.runs import prepare_run_dir
    from tagtune.training import quiet_lightning

    quiet_lightning()
    started = time.perf_counter()
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path and not Path(ckpt_path).expanduser().is_file():
        raise InputError("checkpoint does not exist", ckpt_path, hint="pass ckpt_path=<model dir>/checkpoints/last.ckpt")
    data = load_vae_data(cfg.data)
    if len(data.train) < 2:
        raise InputError(
            f"only {len(data.train)} training row(s) after the split; need at least 2", data.dataset.source,
            hint="add data or lower data.val_fraction / data.test_fraction",
        )
    run_dir = prepare_run_dir(cfg)

    threads_before = torch.get_num_threads()
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    try:
        return _fit(cfg, data, run_dir, started)
    finally:
        torch.set_num_threads(threads_before)


def _fit(cfg: Any, data: VAEData, run_dir: Path, started: float) -> TrainResult:
    """Everything after the data is read: model, Lightning fit, best weights, model directory."""
    import lightning as L
    import torch

    from tagtune.resumable import atomic_write_json
    from tagtune.training import build_trainer
    from tagtune.vae.data import TensorBatches
    from tagtune.vae.lightning_module import VAEModule
    from tagtune.vae.modeldir import save_model_dir

    ckpt_path = cfg.get("ckpt_path")
    arch = _architecture(cfg, data)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    loss = cfg.loss
    module = VAEModule(
        arch, beta=float(cfg.model.beta), learning_rate=float(cfg.model.learning_rate),
        weight_decay=float(cfg.model.weight_decay), bce_weight=float(loss.bce_weight),
        kld_weight=float(loss.kld_weight), size_weight=float(loss.size_weight), free_bits=float(loss.free_bits),
        kl_warmup_epochs=int(loss.kl_warmup_epochs),
    )
    batch_size = int(cfg.data.batch_size)
    train_batches = TensorBatches(data.train, batch_size, shuffle=True, seed=int(cfg.seed))
    has_val = len(data.val) > 0
    val_batches = TensorBatches(data.val, max(batch_size, len(data.val)), shuffle=False) if has_val else None
    trainer_cfg, show_bar = _trainer_config(cfg, has_val)
    callbacks = [_epoch_sync_callback(train_batches)]
    if show_bar:
        callbacks.append(_epoch_progress_callback(int(cfg.trainer.max_epochs)))
    extra = {} if has_val else {"limit_val_batches": 0}
    trainer = build_trainer(trainer_cfg, run_dir, callbacks=callbacks, **extra)
    fit_started = time.perf_counter()
    try:
        trainer.fit(module, train_batches, val_batches, ckpt_path=str(Path(ckpt_path).expanduser()) if ckpt_path else None)
    except (RuntimeError, KeyError) as exc:
        if ckpt_path and ("state_dict" in str(exc) or "size mismatch" in str(exc) or isinstance(exc, KeyError)):
            first = str(exc).strip().splitlines()[0][:200]
            raise ConfigError(f"checkpoint {ckpt_path} does not fit this model ({first})", hint="resume with the same model.* settings and data") from exc
        raise
    fit_seconds = time.perf_counter() - fit_started
    last = dict(trainer.callback_metrics.items())
    module.cpu()  # trained on a GPU (trainer.accelerator=gpu) or not, the model dir holds CPU tensors
    best_path = _load_best(module, trainer)

    module.eval()
    with torch.no_grad():
        mu, logvar = module.vae.encode(torch.as_tensor(data.train))
    save_model_dir(run_dir, module.vae, data.taxonomy, mu, logvar)

    cb = trainer.checkpoint_callback
    best_score = getattr(cb, "best_model_score", None) if cb is not None else None
    metrics: dict[str, Any] = {
        "epochs": int(trainer.current_epoch),
        "global_steps": int(trainer.global_step),
        "stopped_early": bool(getattr(trainer, "early_stopping_callback", None) is not None
                              and getattr(trainer.early_stopping_callback, "stopped_epoch", 0) > 0),
        "train_loss": _scalar(last, "train/loss"),
        "train_bce": _scalar(last, "train/bce"),
        "train_kld": _scalar(last, "train/kld"),
        "val_loss": _scalar(last, "val/loss"),
        "val_bce": _scalar(last, "val/bce"),
        "val_kld": _scalar(last, "val/kld"),
        "best_val_loss": None if best_score is None else round(float(best_score), 5),
        "best_checkpoint": None if best_path is None else str(Path(best_path).relative_to(run_dir)) if Path(best_path).is_relative_to(run_dir) else best_path,
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "fit_seconds": round(fit_seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "architecture": arch,
        "dataset": data.summary(),
    }
    atomic_write_json(run_dir / "metrics.json", metrics)
    return TrainResult(run_dir, metrics)
