"""The Lightning Trainer every training command uses, and the rules all training runs follow.

Built from the trainer/callbacks/logger configs: checkpoints with an unambiguous ``last.ckpt``
(overwritten, never ``last-v1.ckpt``), early stopping, a CSV (default), W&B or no logger, and
progress sent to a :class:`~tagtune.report.Reporter` instead of Lightning's own bar. Three
rules hold for every run:

* **resume**: a rerun of the same command continues from ``<run>/checkpoints/last.ckpt`` when the
  run did not finish (:func:`resume_path`);
* **interrupt**: Ctrl-C leaves ``last.ckpt`` of the last finished epoch and reaches the CLI as
  :class:`~tagtune.errors.Interrupted` (Lightning itself would ``sys.exit(1)`` silently);
* **divergence**: a non-finite training loss stops the run with one line; the last good
  checkpoint is kept and no model is written.
"""

from __future__ import annotations

import logging
import math
import signal
import warnings
from pathlib import Path
from typing import Any, Protocol

from tagtune.config.sections import Callbacks, Logger, Trainer
from tagtune.config.typed import to_dict
from tagtune.errors import DependencyError, InputError, Interrupted, OutputError, TagtuneError
from tagtune.models.device import resolve_precision
from tagtune.report import SILENT, Reporter

_NOISY_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.fabric.utilities.seed",
    "lightning.pytorch.callbacks.model_summary",
)
LAST = "last.ckpt"


class Diverged(TagtuneError):
    """Training produced a non-finite loss (exit 2; the last good checkpoint is kept)."""


class TrainingConfig(Protocol):
    """What :func:`build_trainer` reads from a training command's typed config (``vae train``, ``caption finetune``)."""

    @property
    def trainer(self) -> Trainer: ...

    @property
    def callbacks(self) -> Callbacks: ...

    @property
    def logger(self) -> Logger: ...


def check_loss(value: float, step: int) -> None:
    """Raise :class:`Diverged` for a NaN or infinite loss (called from the LightningModules)."""
    if not math.isfinite(value):
        raise Diverged(f"training diverged: the loss became {value} at step {step}")


def quiet_lightning() -> None:
    """Silence Lightning's informational start-up lines and known-harmless warnings."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (".*does not have many workers.*", ".*LeafSpec.*", ".*is smaller than the logging interval.*",
                    ".*Checkpoint directory .* exists and is not empty.*", ".*The dirpath has changed.*",
                    ".*val_dataloader.*", ".*You called `self.log.*"):
        warnings.filterwarnings("ignore", message=message)


def resume_path(explicit: str | None, run_dir: Path, finished: bool) -> str | None:
    """The checkpoint to resume from: the one asked for, else ``last.ckpt`` of an unfinished run."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise InputError("checkpoint to resume from does not exist", path, hint=f"point it at <run>/checkpoints/{LAST}")
        return str(path)
    last = Path(run_dir) / "checkpoints" / LAST
    return str(last) if last.is_file() and not finished else None


def claim_run_dir(run_dir: Path, weights: str, what: str, resume: str | None, resume_key: str) -> str | None:
    """Check a training run's folder before any work: the checkpoint to resume from, if any.

    A folder that already holds ``weights`` (a finished run) is refused unless ``resume`` names a
    checkpoint to train further from; a folder tagtune did not make is refused (nothing is read yet).
    """
    from tagtune.files.runs import check_claimable

    finished = (run_dir / weights).is_file()
    checkpoint = resume_path(resume, run_dir, finished)
    if finished and checkpoint is None:
        raise OutputError(f"{run_dir} already holds a {what}",
                          hint=f"choose another -o, or train it further with {resume_key}=<dir>/checkpoints/{LAST}")
    check_claimable(run_dir)
    return checkpoint


def _logger(lg: Logger, run_dir: Path) -> Any:
    if lg.name == "none":
        return False
    if lg.name == "csv":
        from lightning.pytorch.loggers import CSVLogger

        # metrics/version_N/metrics.csv: a resumed run starts a new version and keeps the old rows
        return CSVLogger(save_dir=str(run_dir), name="metrics")
    try:
        import wandb  # noqa: F401
    except ImportError as exc:
        raise DependencyError("logger=wandb needs the wandb package", hint="pip install 'tagtune[wandb]' or use logger=csv") from exc
    from lightning.pytorch.loggers import WandbLogger

    return WandbLogger(project=lg.project or "tagtune", entity=lg.entity, offline=bool(lg.offline),
                       log_model=bool(lg.log_model), save_dir=str(run_dir), name=run_dir.name)


def _check_accelerator(accelerator: str) -> None:
    if str(accelerator).lower() in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise DependencyError(f"trainer.accelerator={accelerator} but CUDA is not available on this machine",
                                  hint="use trainer.accelerator=auto or trainer.accelerator=cpu")


def _progress_callback(reporter: Reporter, per: str, total: int) -> Any:
    """Progress over epochs (``per="epoch"``, short epochs) or optimiser steps, with the latest losses."""
    from lightning.pytorch.callbacks import Callback

    class ReporterProgress(Callback):
        task: Any = None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            done = trainer.current_epoch if per == "epoch" else trainer.global_step
            self.task = reporter.start("training", total=total, unit="epochs" if per == "epoch" else "steps")
            self.task.update(completed=done)

        def _losses(self, trainer: Any) -> str:
            m = trainer.callback_metrics
            return "  ".join(f"{k} {float(m[k]):.3f}" for k in ("train/loss", "val/loss") if k in m)

        def on_train_batch_end(self, trainer: Any, *args: Any) -> None:
            if per == "step" and self.task is not None:
                self.task.update(completed=trainer.global_step, info=self._losses(trainer))

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if per == "epoch" and self.task is not None:
                self.task.update(completed=trainer.current_epoch + 1, info=self._losses(trainer))

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.task is not None:
                self.task.update(total=self.task.completed)
                self.task.close()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self.task is not None:
                self.task.close()

    return ReporterProgress()


def build_trainer(cfg: TrainingConfig, run_dir: Path, reporter: Reporter = SILENT, progress: str = "epoch",
                  callbacks: list[Any] | None = None, **overrides: Any) -> Any:
    """A ``lightning.Trainer`` for ``cfg`` writing checkpoints and metrics under ``run_dir``.

    Args:
        cfg: A training command's typed config (its ``trainer``, ``callbacks`` and ``logger`` sections).
        run_dir: The run's output directory.
        reporter: Receives the training progress (when ``callbacks.progress_bar.enabled``).
        progress: ``epoch`` or ``step``: what one unit of progress is.
        callbacks: Extra callbacks.
        **overrides: Trainer arguments that win over the config (tests, no validation split).
    """
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    quiet_lightning()
    run_dir = Path(run_dir)
    trainer_cfg = {k: v for k, v in to_dict(cfg.trainer).items() if v is not None}
    _check_accelerator(trainer_cfg.get("accelerator", "auto"))
    asked = trainer_cfg.get("precision", "32-true")
    trainer_cfg["precision"] = resolve_precision(asked, trainer_cfg.get("accelerator"))
    if trainer_cfg["precision"] != asked and trainer_cfg["precision"] != "32-true":
        reporter.note(f"trainer.precision=auto: {trainer_cfg['precision']} on this GPU")
    cbs: list[Any] = list(callbacks or [])
    ckpt, stop = cfg.callbacks.model_checkpoint, cfg.callbacks.early_stopping
    if ckpt.enabled:
        cbs.append(ModelCheckpoint(
            dirpath=str(run_dir / "checkpoints"), filename="epoch{epoch:03d}-step{step:06d}", auto_insert_metric_name=False,
            monitor=ckpt.monitor, mode=ckpt.mode, save_top_k=ckpt.save_top_k, save_last=ckpt.save_last,
            enable_version_counter=False,  # last.ckpt is overwritten: the name always means this run's latest
        ))
    if stop.enabled:
        cbs.append(EarlyStopping(monitor=stop.monitor, mode=stop.mode, patience=stop.patience, min_delta=stop.min_delta))
    if cfg.callbacks.progress_bar.enabled:
        max_epochs = int(trainer_cfg.get("max_epochs", 1))
        cbs.append(_progress_callback(reporter, progress, max_epochs if progress == "epoch" else 0))
    kwargs: dict[str, Any] = {
        **trainer_cfg, "default_root_dir": str(run_dir), "callbacks": cbs, "logger": _logger(cfg.logger, run_dir),
        "enable_checkpointing": bool(ckpt.enabled), "enable_progress_bar": False, "enable_model_summary": False,
        **overrides,
    }
    return L.Trainer(**kwargs)


def fit(trainer: Any, module: Any, train: Any, val: Any = None, ckpt_path: str | None = None) -> None:
    """``trainer.fit`` with tagtune's interrupt and divergence rules (see the module docstring)."""
    try:
        trainer.fit(module, train, val, ckpt_path=ckpt_path)
    except SystemExit as exc:  # Lightning's answer to KeyboardInterrupt: sys.exit(1)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning set it to SIG_IGN
        if exc.code == 1 and getattr(trainer, "interrupted", False):
            raise Interrupted("training") from None
        raise
    except Diverged as exc:
        last = Path(trainer.default_root_dir) / "checkpoints" / LAST
        kept = f"the last good checkpoint is kept ({last})" if last.is_file() else "no checkpoint was kept"
        raise Diverged(f"{exc.message}; {kept}, no model was written",
                       hint="lower the learning rate (model.learning_rate / optimizer.lr) and run again") from None
    except RuntimeError as exc:
        text = str(exc)
        if ckpt_path and ("state_dict" in text or "size mismatch" in text or "Missing key" in text):
            raise InputError(f"checkpoint does not fit this model ({text.strip().splitlines()[0][:160]})", ckpt_path,
                             hint="resume with the same model settings and data, or start a new run") from exc
        raise
