"""Choosing the torch device, dtype, training precision and CPU thread count, with one-line errors when CUDA
is asked for but absent.

``auto`` means "what this machine does well": bfloat16 on GPUs that compute in it natively (compute
capability 8.0 and newer: A100, L4, H100 ...), float16 on older GPUs, float32 on CPU. bfloat16 keeps
float32's range, so activations that overflow float16 (T5 encoders, long LLM sequences) stay finite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from tagtune.errors import DependencyError
from tagtune.files.sharding import local_device_index

BF16_MIN_CAPABILITY = 8  # Ampere: the first CUDA generation with native bfloat16 matrix units


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


def bf16_native(device: str) -> bool:
    """Whether ``device`` is a CUDA GPU with native bfloat16 (compute capability >= 8.0).

    ``torch.cuda.is_bf16_supported()`` also says yes for GPUs that only emulate it (slowly), so the
    capability is asked directly.
    """
    if not str(device).startswith("cuda") or not cuda_available():
        return False
    import torch

    index = torch.device(device).index
    major, _minor = torch.cuda.get_device_capability(local_device_index() if index is None else index)
    return major >= BF16_MIN_CAPABILITY


def pick_dtype(spec: str | None, device: str) -> Any:
    """``auto`` -> bfloat16 on GPUs with native bfloat16, float16 on older GPUs, float32 on CPU; otherwise
    the named torch dtype (half precision asked for on CPU gives float32: slow and poorly supported there)."""
    import torch

    spec = (spec or "auto").lower()
    if spec == "auto":
        if not device.startswith("cuda"):
            return torch.float32
        return torch.bfloat16 if bf16_native(device) else torch.float16
    if device == "cpu" and spec in ("float16", "fp16", "half", "bfloat16", "bf16"):
        return torch.float32
    try:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "half": torch.float16}.get(
            spec, getattr(torch, spec)
        )
    except AttributeError:
        raise DependencyError(f"unknown dtype '{spec}'", hint="use auto, float32, float16 or bfloat16") from None


def resolve_precision(precision: Any, accelerator: str | None) -> Any:
    """``trainer.precision: auto`` -> the Lightning precision this run gets; any other value unchanged.

    ``bf16-mixed`` on a GPU with native bfloat16, ``16-mixed`` (with loss scaling) on older GPUs,
    ``32-true`` on CPU and other accelerators. Resolved when the trainer is built, so one config
    serves a laptop and a cluster; ``16-mixed`` stays available as an explicit choice.
    """
    if str(precision).strip().lower() != "auto":
        return precision
    accelerator = str(accelerator or "auto").lower()
    if accelerator not in ("auto", "gpu", "cuda") or not cuda_available():
        return "32-true"
    return "bf16-mixed" if bf16_native(f"cuda:{local_device_index()}") else "16-mixed"


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
