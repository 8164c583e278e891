"""The Lightning Trainer every training command uses, built from the trainer/callbacks/logger configs.

Keeps the VAE and caption recipes free of boilerplate: checkpointing (with ``last.ckpt`` for
resuming), early stopping, the rich progress bar, and a CSV (default), W&B or no logger. It
also quiets Lightning's start-up chatter and turns "asked for a GPU but there is none" into
one line.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from tagtune.errors import DependencyError

_NOISY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.callbacks.model_summary",
)


def quiet_lightning() -> None:
    """Silence Lightning's informational start-up lines and known-harmless warnings."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def _logger(cfg: Any, run_dir: Path) -> Any:
    kind = (cfg.get("logger") or {}).get("name", "csv") if cfg.get("logger") is not None else "none"
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        # metrics/version_N/metrics.csv: a resumed run starts a new version and keeps the old rows
        return CSVLogger(save_dir=str(run_dir), name="metrics")
    if kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError as exc:
            raise DependencyError("logger=wandb needs the wandb package", hint="pip install 'tagtune[wandb]' or use logger=csv") from exc
        from lightning.pytorch.loggers import WandbLogger

        lg = cfg.logger
        return WandbLogger(
            project=lg.get("project", "tagtune"), entity=lg.get("entity"), offline=bool(lg.get("offline", False)),
            log_model=bool(lg.get("log_model", False)), save_dir=str(run_dir), name=run_dir.name,
        )
    raise DependencyError(f"unknown logger '{kind}'", hint="use logger=csv, logger=wandb or logger=none")


def _check_accelerator(trainer_cfg: dict[str, Any]) -> None:
    acc = str(trainer_cfg.get("accelerator", "auto")).lower()
    if acc in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DependencyError(
                f"trainer.accelerator={acc} but CUDA is not available on this machine",
                hint="use trainer.accelerator=auto or trainer.accelerator=cpu",
            )


def build_trainer(cfg: Any, run_dir: Path, callbacks: list[Any] | None = None, **overrides: Any) -> Any:
    """A ``lightning.Trainer`` for ``cfg`` writing checkpoints and metrics under ``run_dir``.

    Args:
        cfg: A composed training config with ``trainer``, ``callbacks`` and ``logger`` sections.
        run_dir: The run's output directory.
        callbacks: Extra callbacks (e.g. a recipe's own logging).
        **overrides: Trainer arguments that win over the config (used by benchmarks and tests).
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from omegaconf import OmegaConf

    quiet_lightning()
    run_dir = Path(run_dir)
    trainer_cfg = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if v is not None}
    _check_accelerator(trainer_cfg)
    cb_cfg = cfg.get("callbacks") or {}
    cbs: list[Any] = list(callbacks or [])
    ckpt = cb_cfg.get("model_checkpoint") or {}
    if ckpt.get("enabled", False):
        cbs.append(
            ModelCheckpoint(
                dirpath=str(run_dir / "checkpoints"),
                filename="epoch{epoch:03d}-step{step:06d}",
                auto_insert_metric_name=False,
                monitor=ckpt.get("monitor"),
                mode=ckpt.get("mode", "min"),
                save_top_k=int(ckpt.get("save_top_k", 1)),
                save_last=bool(ckpt.get("save_last", True)),
            )
        )
    stop = cb_cfg.get("early_stopping") or {}
    if stop.get("enabled", False):
        cbs.append(
            EarlyStopping(
                monitor=stop.get("monitor", "val/loss"), mode=stop.get("mode", "min"),
                patience=int(stop.get("patience", 10)), min_delta=float(stop.get("min_delta", 0.0)),
            )
        )
    show_bar = bool((cb_cfg.get("progress_bar") or {}).get("enabled", False))
    if show_bar:
        from lightning.pytorch.callbacks import RichProgressBar

        cbs.append(RichProgressBar(leave=False))  # leave=True prints a line per epoch: slow and noisy
    kwargs: dict[str, Any] = {
        **trainer_cfg,
        "default_root_dir": str(run_dir),
        "callbacks": cbs,
        "logger": _logger(cfg, run_dir),
        "enable_checkpointing": bool(ckpt.get("enabled", False)),
        "enable_progress_bar": show_bar,
        "enable_model_summary": False,
        **overrides,
    }
    return L.Trainer(**kwargs)
