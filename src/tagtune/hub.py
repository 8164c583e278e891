"""Loading models from the Hugging Face Hub or a local path, with one-line errors.

A missing, gated or unreachable model becomes a :class:`ModelNotFoundError` naming the model
and pointing at the offline ``--preset quick_test``. ``trust_remote_code`` stays off unless the
config turns it on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tagtune.errors import ModelNotFoundError

T = TypeVar("T")


def describe_load_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if "gated" in lowered or "401" in lowered or "403" in lowered or "access to model" in lowered:
        return "gated or private: accept its license on the Hub and log in (`hf auth login`)"
    if any(s in lowered for s in ("connect", "offline", "resolve", "network", "couldn't reach", "max retries", "timed out", "localentrynotfound", "cannot find the requested files")):
        return "not in the local cache and the Hub cannot be reached"
    if "does not appear to have" in lowered or "not a valid model identifier" in lowered or "404" in lowered or "repository not found" in lowered:
        return "no such model on the Hub or on disk"
    return text[:160] or type(exc).__name__


def load_pretrained(loader: Callable[..., T], name: str, what: str = "model", **kwargs: Any) -> T:
    """Call ``loader(name, **kwargs)`` (a ``from_pretrained``), turning failures into one line."""
    kwargs.setdefault("trust_remote_code", False)
    try:
        return loader(name, **kwargs)
    except (OSError, ValueError, EnvironmentError, RuntimeError) as exc:  # HF raises these for missing models
        local = Path(name).expanduser()
        reason = "local path has no loadable files" if local.exists() else describe_load_error(exc)
        raise ModelNotFoundError(
            f"cannot load {what} '{name}': {reason}",
            hint="download it once with network access, point model.name at a local copy, or run offline with --preset quick_test",
        ) from exc
