"""Combining the metadata parts of sharded runs into one ``metadata.jsonl``, with checks.

Each shard of ``tagtune tta generate --shard I/N`` appends to its own
``metadata.shard-0000I-of-0000N.jsonl``; :func:`merge_dir` (``tagtune tta merge DIR``, and the next
unsharded run in DIR) folds them into ``metadata.jsonl``. Rules:

* an id twice in one file, or in two parts with different lines, is an error (exit 2);
* the same line in two places (a merge interrupted after writing, shards rerun with another N)
  is kept once;
* a part's line replaces the merged file's line for the same id (the part is newer: a shard
  rerun with ``--overwrite``);
* every line's ``file_name`` must exist inside DIR and read back as audio, else an error;
* audio files no line points at (orphans) are reported, not fatal.

The new ``metadata.jsonl`` is written to a temporary name and renamed, and parts are deleted only
after that, so an interrupted merge loses nothing. Files being written by a running shard are
locked and refused.

Merging reads the lines as they are written (not through :func:`tagtune.records.reader.read_clips`):
it cuts torn last lines, compares whole lines across files and writes the winners back byte for
byte, and a line without an id is an error here rather than the ``row-<line>`` of a single file
(line numbers mean nothing across parts).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.errors import InputError, OutputError
from tagtune.files.resumable import (
    atomic_path,
    dumps_line,
    iter_jsonl,
    lock_handle,
    output_error,
    repair_tail,
)
from tagtune.tta.audio import AUDIO_SUFFIXES, probe
from tagtune.tta.config import MergeConfig

METADATA = "metadata.jsonl"
PART_GLOB = "metadata.shard-*-of-*.jsonl"
AUDIO_DIR = "audio"  # where the clips live (tta/prompts names them)


def part_name(shard_tag: str) -> str:
    """``metadata.shard-00001-of-00008.jsonl`` for a shard's tag."""
    return f"metadata.{shard_tag}.jsonl"


def metadata_parts(folder: Path) -> list[Path]:
    return sorted(Path(folder).glob(PART_GLOB))


@dataclass
class MergeReport:
    """What a merge found and did."""

    folder: Path
    lines: int = 0
    parts: list[Path] = field(default_factory=list)
    merged: bool = False
    replaced: int = 0
    deduplicated: int = 0
    orphans: list[str] = field(default_factory=list)

    @property
    def metadata(self) -> Path:
        return self.folder / METADATA


@contextlib.contextmanager
def locked(paths: list[Path], hint: str = "wait for every shard to finish, then run `tagtune tta merge` again") -> Iterator[None]:
    """Hold exclusive locks on the existing files among ``paths`` (no shard may be writing them)."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            if path.exists():
                try:
                    fh = stack.enter_context(open(path, "ab"))
                except OSError as exc:
                    raise output_error(path, exc) from exc
                lock_handle(fh, path, hint)
        yield


def remove_locked(paths: list[Path], hint: str) -> None:
    """Delete the existing files among ``paths`` (``--force``, ``--overwrite``), holding all their locks.

    The locks come first: a file another run is writing is refused in one line and nothing is
    deleted (deleting first let a second writer start a new file while the first one went on
    writing the deleted one, and the first's work vanished while it exited 0).
    """
    with locked(paths, hint):
        for path in paths:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise output_error(path, exc) from exc


def _digest(obj: dict[str, Any]) -> bytes:
    return hashlib.blake2b(dumps_line(obj).encode("utf-8"), digest_size=16).digest()


def clip_path(folder: Path, rec: dict[str, Any], path: Path, line: int) -> Path:
    """The audio file a metadata line points at (absolute, symlinks kept); a missing ``file_name``, or one
    that itself leaves the folder (absolute, or ``..`` past its top), is an InputError.

    The name is normalised as text, never resolved: a clip that is a symlink to storage outside the
    folder (datasets link to shared storage) is the folder's clip; only the name decides.
    """
    name = rec.get("file_name")
    if not isinstance(name, str) or not name:
        raise InputError("metadata line has no file_name", path, line, field="file_name")
    norm = os.path.normpath(name)
    if os.path.isabs(name) or Path(name).is_absolute() or norm == os.pardir or norm.startswith(os.pardir + os.sep):
        raise InputError(f"file_name '{name}' points outside {folder}", path, line, field="file_name",
                         hint="file_name is relative to the folder (audio/<id>.wav); link storage in with a symlink instead")
    return Path(os.path.abspath(Path(folder) / norm))


def merge_dir(folder: str | Path, write: bool = True) -> MergeReport:
    """Check ``metadata.jsonl`` and the shard parts of ``folder`` and combine them.

    Args:
        folder: A ``tagtune tta generate`` output directory.
        write: Write the merged file and remove the parts (False: check only).

    Raises:
        InputError: Duplicate ids or lines whose audio file is missing or unreadable (nothing is
            changed then).
        OutputError: A part is still being written, or the folder is not writable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a directory", folder, hint="pass the output directory of `tagtune tta generate`")
    main = folder / METADATA
    parts = metadata_parts(folder)
    report = MergeReport(folder=folder, parts=parts)
    sources = ([main] if main.exists() else []) + parts
    if not sources:
        raise InputError(f"no {METADATA} or metadata.shard-*.jsonl parts", folder,
                         hint="is this the output directory of `tagtune tta generate`?")
    with locked(sources):
        winner = _winners(sources, main, report)
        referenced = _check_files(folder, sources, winner)
        report.orphans = _orphans(folder, referenced)
        report.lines = len(winner)
        if write and parts:
            _write_merged(main, sources, winner)
            for part in parts:
                try:
                    part.unlink()
                except OSError as exc:
                    raise OutputError(f"{part}: merged into {main.name} but cannot be removed ({exc.strerror})") from exc
            report.merged = True
    return report


def _winners(sources: list[Path], main: Path, report: MergeReport) -> dict[str, tuple[int, int, bytes]]:
    """Which line wins for each id: ``id -> (source index, line, digest)`` (the lines stay on disk)."""
    winner: dict[str, tuple[int, int, bytes]] = {}
    in_parts: dict[str, tuple[int, int, bytes]] = {}  # first part line of each id
    for src_index, path in enumerate(sources):
        repair_tail(path)
        in_file: set[str] = set()
        for line, rec in iter_jsonl(path):
            ident = rec.get("id")
            if not isinstance(ident, str) or not ident:
                raise InputError("metadata line has no id", path, line, field="id")
            if ident in in_file:
                raise InputError(f"duplicate id '{ident}' within the file", path, line, field="id",
                                 hint="the file was written by two runs at once; remove one of the lines")
            in_file.add(ident)
            digest = _digest(rec)
            if path != main:
                other = in_parts.setdefault(ident, (src_index, line, digest))
                if other[2] != digest:
                    raise InputError(
                        f"duplicate id '{ident}': also in {sources[other[0]].name}:{other[1]} with different content",
                        path, line, field="id",
                        hint="two shards rendered the same clip with different settings; delete the line you do not want",
                    )
            prev = winner.get(ident)
            if prev is not None and prev[2] == digest:
                report.deduplicated += 1
                continue
            report.replaced += prev is not None  # a part's line is newer than the merged file's
            winner[ident] = (src_index, line, digest)
    return winner


def _check_files(folder: Path, sources: list[Path], winner: dict[str, tuple[int, int, bytes]]) -> set[Path]:
    """Every winning line must point at a readable file inside the folder; returns those files."""
    missing: list[str] = []
    referenced: set[Path] = set()
    for src_index, path in enumerate(sources):
        for line, rec in iter_jsonl(path):
            if winner[rec["id"]][:2] != (src_index, line):
                continue
            clip = clip_path(folder, rec, path, line)
            referenced.add(clip)
            if probe(clip) is None:
                missing.append(f"{rec['file_name']} ({path.name}:{line})")
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise InputError(f"{len(missing)} metadata line(s) point at missing or unreadable audio: {', '.join(missing[:3])}{more}",
                         folder, hint="run the same `tagtune tta generate` again to re-render them")
    return referenced


def _orphans(folder: Path, referenced: set[Path]) -> list[str]:
    """Audio files in ``audio/`` that no line points at (reported, not fatal)."""
    audio_dir = folder / AUDIO_DIR
    if not audio_dir.is_dir():
        return []
    return sorted(str(p.relative_to(folder)) for p in audio_dir.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in AUDIO_SUFFIXES
                  and Path(os.path.abspath(p)) not in referenced)


def _write_merged(main: Path, sources: list[Path], winner: dict[str, tuple[int, int, bytes]]) -> None:
    with atomic_path(main) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            for src_index, path in enumerate(sources):
                for line, rec in iter_jsonl(path):
                    if winner[rec["id"]][:2] == (src_index, line):
                        out.write(dumps_line(rec))
            out.flush()
            os.fsync(out.fileno())


def merge(cfg: MergeConfig) -> MergeReport:
    """``tagtune tta merge``: merge the directory in ``generate.output``."""
    return merge_dir(Path(cfg.generate.output).expanduser())
