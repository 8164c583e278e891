"""The one JSONL reader (and writer) of the test suite."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_jsonl(path: str | Path, *, complete: bool = False, skip_torn: bool = False) -> list[dict[str, Any]]:
    """Every non-blank line of ``path``, parsed.

    Args:
        complete: Fail when the last line is torn (no trailing newline): outputs tagtune finished or
            resumed must hold whole lines only.
        skip_torn: Leave out a torn last line (a file read right after its writer was killed).
    """
    text = Path(path).read_text(encoding="utf-8")
    if complete:
        assert text == "" or text.endswith("\n"), f"{path}: torn last line {text.splitlines()[-1][:80]!r}"
    lines = text.split("\n")
    if skip_torn and lines and lines[-1].strip():
        lines = lines[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    """Write ``rows`` one per line (a ``str`` row is written as it is, e.g. a deliberately broken line)."""
    path = Path(path)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def count_lines(path: str | Path) -> int:
    """Newline-terminated lines in ``path`` (0 when it does not exist yet): a cheap readiness probe."""
    path = Path(path)
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0
