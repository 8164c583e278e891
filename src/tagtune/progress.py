"""Rich progress bars on stderr, the same look for every long-running command."""

from __future__ import annotations

from typing import Any


def make_progress(unit: str = "items", disable: bool = False) -> Any:
    """A rich Progress with a bar, done/total, rate (``unit``/s), elapsed and remaining time."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=disable,
        transient=False,
    )


def rate_text(done: int, seconds: float, unit: str) -> str:
    return f"{done / seconds:.2f} {unit}/s" if seconds > 0 and done else f"- {unit}/s"
