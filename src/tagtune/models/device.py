"""Choosing the torch device, dtype and CPU thread count, with one-line errors when CUDA is asked for but absent."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tagtune.errors import DependencyError
from tagtune.files.sharding import local_device_index


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def pick_device(spec: str | None = "auto") -> str:
    """``auto`` -> ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``."""
    spec = (spec or "auto").lower()
    if spec == "auto":
        return f"cuda:{local_device_index()}" if cuda_available() else "cpu"
    if spec.startswith("cuda") and not cuda_available():
        raise DependencyError(f"device '{spec}' requested but CUDA is not available", hint="use device=auto or device=cpu")
    return spec


def pick_dtype(spec: str | None, device: str) -> Any:
    """``auto`` -> float16 on GPU, float32 on CPU; otherwise the named torch dtype."""
    import torch

    spec = (spec or "auto").lower()
    if spec == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    if device == "cpu" and spec in ("float16", "fp16", "half", "bfloat16", "bf16"):
        return torch.float32  # half precision on CPU is slow and poorly supported
    try:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "half": torch.float16}.get(
            spec, getattr(torch, spec)
        )
    except AttributeError:
        raise DependencyError(f"unknown dtype '{spec}'", hint="use auto, float32, float16 or bfloat16") from None


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run a block with ``count`` intra-op CPU threads (None: leave torch's setting), then restore it.

    Small models gain nothing from several threads, and on a busy machine their spin-waits make a
    two-thread run several times slower than a one-thread run (config key ``model.threads``).
    """
    import torch

    if not count:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(before)
