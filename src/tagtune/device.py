"""Choosing the torch device and dtype, with one-line errors when CUDA is asked for but absent."""

from __future__ import annotations

from typing import Any

from tagtune.errors import DependencyError
from tagtune.sharding import local_device_index


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
