"""The cache of locally built tiny models (caption LLM, MusicGen, CLAP): built once, checked on use.

A model is built into a temporary sibling folder and renamed into place, so concurrent builders
(parallel test workers, several shards) never see half a model; the first one wins. A marker file
records the sha256 of every file; a cached model whose files no longer match (edited, truncated)
is rebuilt instead of failing later with a confusing load error.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagtune.errors import OutputError

MARKER = "tagtune-tiny.json"


def _digests(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER):
        out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def is_intact(folder: Path) -> bool:
    """Whether ``folder`` is a finished build whose files are exactly as built."""
    try:
        info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("files") == _digests(folder)


def build_cached(final: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """Return ``final``, building it first with ``build(tmp_dir)`` when missing or damaged.

    ``build`` writes the model files into the folder it is given and returns a small description
    (kept in the marker file with the file digests).
    """
    final = Path(final)
    if is_intact(final):
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.build-", dir=final.parent))
    except OSError as exc:
        raise OutputError(f"cannot create the tiny-model cache in {final.parent}: {exc.strerror or exc}",
                          hint="set paths.cache_dir (or TAGTUNE_CACHE_DIR) to a writable directory") from exc
    try:
        info = build(tmp)
        info["files"] = _digests(tmp)
        (tmp / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        if final.exists() and not is_intact(final):
            shutil.rmtree(final, ignore_errors=True)  # damaged, or left by an interrupted older build
        try:
            os.rename(tmp, final)
        except OSError:
            if not is_intact(final):  # not a lost race with another builder: a real error
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
