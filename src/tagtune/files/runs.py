"""Run directories: where each command writes, with its resolved config and a manifest.

The compose API has no Hydra run directory, so tagtune makes ``outputs/<task>/<timestamp>/``
(or the ``-o`` directory) itself; :mod:`tagtune.config.saved` saves ``config.yaml`` there.

Ownership: a directory tagtune writes into is *claimed* first (:func:`claim_dir`). A new or empty
directory gets a marker file (``.tagtune-run.json``) naming the command; a directory with the
marker (or an earlier tagtune run's ``config.yaml``) is tagtune's own and is reused (resume); any
other non-empty directory is refused with one line, so no user file is ever overwritten. Removing
a pipeline stage (``--force``) removes only the files that stage's manifest lists as written by it
(:func:`remove_written`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tagtune import __version__
from tagtune.files.resumable import atomic_write_json, ensure_dir

MARKER = ".tagtune-run.json"


def _made_by_tagtune(folder: Path) -> bool:
    """An earlier tagtune run's folder: the marker, or a config.yaml that tagtune saved (task_name)."""
    if (folder / MARKER).is_file() or any(folder.glob(".tagtune-*")):  # the marker, a lock of a live run
        return True
    try:
        head = (folder / "config.yaml").read_text(encoding="utf-8")[:20000]
    except (OSError, UnicodeDecodeError):
        return False
    return any(line.startswith("task_name:") for line in head.splitlines())


def check_claimable(path: str | Path) -> None:
    """Refuse, before any work, an output directory :func:`claim_dir` would refuse (writes nothing)."""
    from tagtune.errors import OutputError

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is a file, not a directory", hint="choose a directory for -o")
    if folder.is_dir() and not _made_by_tagtune(folder):
        others = sorted(p.name for p in folder.iterdir())
        if others:
            shown = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
            raise OutputError(f"{folder} is not empty ({shown}) and was not made by tagtune: nothing was written",
                              hint="choose a new or empty output directory (-o)")


def claim_dir(path: str | Path, command: str) -> Path:
    """Make ``path`` this command's output directory, or refuse a non-empty one tagtune did not make.

    Raises:
        OutputError: ``path`` is a file, or a non-empty directory without tagtune's marker.
    """
    folder = Path(path).expanduser()
    check_claimable(folder)
    ensure_dir(folder)
    if not (folder / MARKER).is_file():
        # no timestamp: identical runs leave identical folders (the files' mtimes say when)
        atomic_write_json(folder / MARKER, {"command": command, "tagtune_version": __version__})
    return folder


def check_ours(path: str | Path, command: str, is_ours: Callable[[Path], bool]) -> None:
    """Refuse to overwrite an existing, non-empty file that is not an earlier output of ``command``.

    Raises:
        OutputError: One line naming the file (nothing is written).
    """
    from tagtune.errors import OutputError

    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{path} is a directory; {command} writes a file here", hint="pass a file name to -o")
    if path.is_file() and path.stat().st_size > 0 and not is_ours(path):
        raise OutputError(f"{path} exists and was not written by {command}: it is left as it is",
                          hint="choose another output file (-o)")


def first_line_has(*keys: str) -> Callable[[Path], bool]:
    """``is_ours`` for JSONL outputs: the first line is a JSON object with the nested ``keys``."""
    def check(path: Path) -> bool:
        try:
            with open(path, encoding="utf-8") as fh:
                value: Any = json.loads(fh.readline())
        except (OSError, ValueError):
            return False
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return False
            value = value[key]
        return True

    return check


def json_has(*keys: str) -> Callable[[Path], bool]:
    """``is_ours`` for JSON reports: a JSON object holding every key in ``keys``."""
    def check(path: Path) -> bool:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(k in data for k in keys)

    return check


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder``, as POSIX paths relative to it."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink()} if folder.is_dir() else set()


def remove_written(folder: Path, keep: set[str]) -> tuple[int, list[str]]:
    """Remove every file below ``folder`` except ``keep`` (files that were there before tagtune
    wrote), then the directories left empty. Returns (files removed, files kept)."""
    import os

    removed = 0
    for rel in sorted(files_under(folder) - keep):
        (folder / rel).unlink(missing_ok=True)
        removed += 1
    for root, dirs, _ in os.walk(folder, topdown=False):  # bottom-up: children before parents
        for d in dirs:
            try:
                (Path(root) / d).rmdir()
            except OSError:
                pass  # not empty: it holds a kept file
    return removed, sorted(keep & files_under(folder))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_manifest(path: Path, **fields: Any) -> Path:
    """A small JSON record of a run: what went in, what came out, how long it took."""
    record = {
        "tagtune_version": __version__,
        "python": platform.python_version(),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    }
    return atomic_write_json(Path(path), record)
