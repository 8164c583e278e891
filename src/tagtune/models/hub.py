"""Loading models from the Hugging Face Hub or a local path, with one-line errors.

Loading is local-first: a local directory, else the local cache (``local_files_only``), and only
if that misses and the Hub answers a quick connection probe, the network. So an offline machine
fails in seconds instead of spending a minute in retries. A missing, gated or unreachable model
becomes a :class:`ModelNotFoundError` naming the model and pointing at the offline
``--preset quick_test``. ``trust_remote_code`` stays off unless the config turns it on.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from tagtune.errors import ModelNotFoundError

T = TypeVar("T")
HINT = "run offline with --preset quick_test, or download it once with network access and point the model name at a local copy"
_TRUE = ("1", "true", "yes", "on")


def offline_mode() -> bool:
    """Whether the user switched the Hub off (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint (``HF_ENDPOINT``) answers a TCP connect within ``timeout`` seconds."""
    if offline_mode():
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from (transformers wraps the Hub's typed errors)."""
    out: list[BaseException] = []
    while exc is not None and exc not in out and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def describe_load_error(exc: BaseException) -> str:
    """Why a model did not load, from huggingface_hub's typed errors (text of the first line otherwise)."""
    from huggingface_hub import errors as hub_errors

    for cause in _causes(exc):
        if isinstance(cause, (hub_errors.GatedRepoError, hub_errors.DisabledRepoError)):
            return "gated or private: accept its license on the Hub and log in (`hf auth login`)"
        if isinstance(cause, hub_errors.RevisionNotFoundError):
            return "no such revision on the Hub"
        if isinstance(cause, (hub_errors.RepositoryNotFoundError, hub_errors.HFValidationError)):
            return "no such model on the Hub or on disk"
        if isinstance(cause, (hub_errors.LocalEntryNotFoundError, hub_errors.OfflineModeIsEnabled)):
            return "not in the local cache and the Hub cannot be reached"
        if isinstance(cause, hub_errors.EntryNotFoundError):
            return "the repository lacks a file this model needs"
    text = " ".join(str(exc).split())
    return text[:160] or type(exc).__name__


def resolved_revision(model: Any, source: str, requested: str | None = None) -> str:
    """What exactly was loaded: the Hub commit hash, else ``local:<fingerprint>`` of a local folder."""
    import hashlib

    commit = getattr(getattr(model, "config", None), "_commit_hash", None)
    if commit:
        return str(commit)
    folder = Path(source).expanduser()
    if not folder.is_dir():
        return requested or "unknown"
    h = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        h.update(path.name.encode())
        # small files (configs, tokenizers, the tiny models) by content; big weight files by size
        h.update(path.read_bytes() if path.stat().st_size < (8 << 20) else str(path.stat().st_size).encode())
    return f"local:{h.hexdigest()[:16]}"


def _load(loader: Callable[..., T], name: str, what: str, **kwargs: Any) -> T:
    try:
        return loader(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 -- HF raises many types for missing, tampered or broken models
        local = Path(name).expanduser()
        reason = "local path has no loadable files" if local.exists() else describe_load_error(exc)
        raise ModelNotFoundError(f"cannot load {what} '{name}': {reason}", hint=HINT) from exc


def load_pretrained(loader: Callable[..., T], name: str, what: str = "model", **kwargs: Any) -> T:
    """Call ``loader(name, **kwargs)`` (a ``from_pretrained``) local-first, failures as one line.

    Args:
        loader: e.g. ``AutoModelForCausalLM.from_pretrained``.
        name: A Hub id or a local directory.
        what: How the error message names the thing ("model", "MusicGen processor" ...).
        **kwargs: Passed on; ``trust_remote_code`` defaults to False.
    """
    kwargs.setdefault("trust_remote_code", False)
    local = Path(name).expanduser()
    if local.exists():
        return _load(loader, str(local), what, **kwargs)
    try:
        return loader(name, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        cached_error = exc
    if not hub_reachable():
        why = "offline mode is on (HF_HUB_OFFLINE)" if offline_mode() else "the Hub cannot be reached"
        raise ModelNotFoundError(f"cannot load {what} '{name}': not in the local cache and {why}", hint=HINT) from cached_error
    return _load(loader, name, what, **kwargs)


def quiet_transformers() -> None:
    """No info logs or download bars from transformers (its errors still reach tagtune's messages)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
