"""The tags stage: a beta-VAE over multi-hot tag sets (train, sample, evaluate).

Each command is one plain function taking its typed config (:mod:`tagtune.vae.config`: the keys
it reads, and no others), so the CLI, the pipeline and the tests run the same code:
:func:`tagtune.vae.train.train`, :func:`tagtune.vae.sample.sample` and
:func:`tagtune.vae.evaluate.evaluate`. Importing this package is light; torch and Lightning load
when those modules are imported.
"""

from __future__ import annotations

__all__ = ["config", "constraints", "data", "evaluate", "lightning_module", "metrics", "model", "modeldir", "plots", "sample", "sampler", "train"]
