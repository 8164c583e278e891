"""Crash-safe output: atomic file writes and append-only JSONL files that can be resumed.

Two rules make every long job restartable after a SIGKILL:

* whole files are written to a temporary name in the same directory and renamed into place
  (``os.replace`` is atomic), so a file either exists complete or not at all;
* JSONL outputs grow by whole lines only: each batch is written with one ``write`` and flushed;
  a line torn by a kill has no trailing newline and is cut off the next time the file is opened,
  so every remaining line parses and the ids on it are exactly the finished work.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from tagtune.errors import InputError, OutputError


def output_error(path: Path, exc: OSError) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(f"{path}: no space left on device", hint="free some disk space and run again; finished work is kept")
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
        return OutputError(f"{path}: not writable ({exc.strerror})", hint="choose another output directory with -o")
    return OutputError(f"{path}: cannot write ({exc.strerror or exc})")


def lock_handle(fh: Any, path: Path, hint: str) -> None:
    """Take an exclusive advisory lock on an open file, or raise a one-line OutputError.

    The lock lives as long as the handle; a killed process releases it. (Windows has no such
    locks: there, one writer per output is the user's job.)
    """
    try:
        import fcntl
    except ImportError:
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise OutputError(f"{path} is in use by another tagtune process", hint=hint) from exc


@contextlib.contextmanager
def locked(path: Path, hint: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the duration of the block."""
    ensure_dir(Path(path).parent)
    try:
        fh = open(path, "ab")
    except OSError as exc:
        raise output_error(Path(path), exc) from exc
    with fh:
        lock_handle(fh, Path(path), hint)
        yield


def umask() -> int:
    """The process umask (read without changing it for longer than a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or raise a one-line OutputError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(f"{path} exists and is not a directory") from exc
    except OSError as exc:
        raise output_error(path, exc) from exc
    if not os.access(path, os.W_OK):
        raise OutputError(f"{path}: directory is not writable", hint="choose another output directory with -o")
    return path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=(suffix if suffix is not None else path.suffix) + ".tmp", dir=path.parent
        )
    except OSError as exc:
        raise output_error(path, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files; give the result the usual umask-based mode
            os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def dumps_line(record: dict[str, Any]) -> str:
    """One JSONL line, deterministic for a given record (key order kept, no ASCII escaping)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ": ")) + "\n"


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline) off a JSONL file; returns the bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Walk back to the last newline.
        block = 1 << 16
        pos = size
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return size - keep


MAX_LINE_BYTES = 8 * 1024 * 1024


def iter_jsonl(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line; bad lines raise InputError.

    Lines longer than ``max_line_bytes`` are refused without reading them whole.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            raw = fh.readline(max_line_bytes + 1)
            if not raw:
                break
            lineno += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                raise InputError(
                    f"line is longer than {max_line_bytes // (1024 * 1024)} MiB", path, lineno,
                    hint="is this really a JSONL file with one object per line?",
                )
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text (byte {exc.start})", path, lineno) from exc
            except json.JSONDecodeError as exc:
                raise InputError(json_error(exc), path, lineno) from exc
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, got {type(obj).__name__}", path, lineno)
            if b"\\ud" in raw.lower():
                check_text(obj, path, lineno)
            yield lineno, obj


def json_error(exc: json.JSONDecodeError) -> str:
    """``invalid JSON: Expecting ',' delimiter at column 12`` (json's own message ends in "at" sometimes)."""
    return f"invalid JSON: {exc.msg.removesuffix(' at').strip()} at column {exc.colno}"


def check_text(obj: Any, path: Path | str, line: int) -> None:
    """Refuse strings that cannot be written back as UTF-8 (a lone surrogate such as ``\\ud800``)."""
    def walk(value: Any, where: str | None) -> None:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = f"U+{ord(value[exc.start]):04X}"
                raise InputError(f"text holds an invalid character ({bad}, a lone surrogate)", path, line, where,
                                 hint="fix the \\u escape in the input") from None
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(k, where)
                walk(v, where or str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, where)

    walk(obj, None)


class JsonlAppender:
    """An append-only JSONL output keyed by ``key`` that resumes where a killed run stopped.

    Opening it repairs a torn last line, reads the ids already written (``done``) and takes an
    exclusive lock so two processes cannot interleave lines. ``append`` writes whole lines in one
    call and flushes them to disk; if the write fails (full disk) the file is cut back to its last
    complete line before the error is raised.

    Example:
        >>> with JsonlAppender(out, key="id") as sink:          # doctest: +SKIP
        ...     todo = [r for r in rows if r["id"] not in sink.done]
        ...     sink.append([{"id": "a", "caption": "..."}])
    """

    def __init__(self, path: Path, key: str = "id", overwrite: bool = False,
                 done_when: Callable[[dict[str, Any]], bool] | None = None):
        self.path = Path(path)
        self.key = key
        self.done: set[str] = set()
        self.dropped = 0  # lines of an earlier run that did not count as done (``done_when``) and were removed
        self.repaired_bytes = 0
        ensure_dir(self.path.parent)
        self._open()  # the lock comes first: nothing of another run's file is touched before we hold it
        try:
            if overwrite:
                os.ftruncate(self._fh.fileno(), 0)
            else:
                self.repaired_bytes = repair_tail(self.path)
                if self._read_done(done_when):
                    self._fh.close()
                    self._open()  # the rewrite replaced the file: lock the new one
        except BaseException:
            self._fh.close()
            raise

    def _open(self) -> None:
        try:
            self._fh = open(self.path, "ab", buffering=0)  # unbuffered: append() owns every byte written
        except OSError as exc:
            raise output_error(self.path, exc) from exc
        self._lock()

    def _read_done(self, done_when: Callable[[dict[str, Any]], bool] | None) -> bool:
        """Collect the finished ids; lines that do not count as done (``done_when``) are dropped (the
        file is rewritten without them, atomically; returns whether it was)."""
        kept: list[dict[str, Any]] = []
        for lineno, obj in iter_jsonl(self.path):
            ident = obj.get(self.key)
            if ident is None:
                raise InputError(f"existing output line has no '{self.key}'", self.path, lineno, hint="use --overwrite to start over")
            if done_when is not None and not done_when(obj):
                self.dropped += 1
                continue
            if str(ident) in self.done:
                raise InputError(f"existing output repeats {self.key} '{ident}' (written by two runs at once?)",
                                 self.path, lineno, hint="use --overwrite to start over")
            self.done.add(str(ident))
            kept.append(obj)
        if self.dropped:  # rewrite without them, so their redone lines are not duplicates
            with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as out:
                out.writelines(dumps_line(obj) for obj in kept)
        return bool(self.dropped)

    def _lock(self) -> None:
        try:
            lock_handle(self._fh, self.path, "give each worker its own output (--shard I/N) or wait for the other run")
        except OutputError:
            self._fh.close()
            raise

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Append whole records with one unbuffered write; returns how many were written.

        On a failed write (a full disk) the file is cut back to where it was, through the raw file
        descriptor (a buffered file would try to flush the torn bytes again), and one OutputError
        is raised.
        """
        records = list(records)
        if not records:
            return 0
        data = memoryview("".join(dumps_line(r) for r in records).encode("utf-8"))
        fd = self._fh.fileno()
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise output_error(self.path, exc) from exc
        for r in records:
            self.done.add(str(r[self.key]))
        return len(records)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def link_or_copy(src: Path, dest: Path) -> None:
    """Put ``src`` at ``dest`` as a hard link (a copy across file systems), atomically; a ``dest``
    of the same size is taken as already done (datasets and exports are rebuilt often)."""
    import shutil

    dest = Path(dest)
    if dest.exists() and dest.stat().st_size == Path(src).stat().st_size:
        return
    with atomic_path(dest) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

