"""Rendering for the command line: the rich reporter (progress bars, notes, warnings on stderr).

Stage code never draws; it reports to a :class:`~tagtune.report.Reporter`. This one turns tasks
into rich progress bars (one live display; the pipeline's stages appear as labelled lines in it)
and remembers the task that was running, so an interrupted command can say what it had done.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tagtune.report import Reporter, Task


class RichReporter(Reporter):
    """Progress bars, dim notes and yellow warnings on stderr (stdout stays for results)."""

    def __init__(self) -> None:
        from rich.console import Console

        piped = not sys.stderr.isatty()  # a log: keep paths whole, and room for the bars' columns
        self.console = Console(stderr=True, highlight=False, soft_wrap=piped,
                               width=120 if piped and "COLUMNS" not in os.environ else None)
        self._progress: Any = None
        self._open: list[Task] = []
        self.last: Task | None = None

    def _bar(self) -> Any:
        if self._progress is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
                TimeRemainingColumn(), console=self.console, transient=False,
            )
            self._progress.start()
        return self._progress

    @staticmethod
    def _rate(task: Task) -> str:
        rate = task.rate()
        text = f"{rate:.1f} {task.unit}/s" if task.completed and rate else f"- {task.unit}/s"
        return f"{text}  {task.info}" if task.info else text

    def _on_start(self, task: Task) -> None:
        from rich.markup import escape

        task.handle = self._bar().add_task(escape(task.description), total=task.total, completed=task.completed,
                                           rate=self._rate(task))
        self._open.append(task)
        self.last = task

    def _on_update(self, task: Task) -> None:
        if self._progress is not None and task.handle is not None:
            self._progress.update(task.handle, completed=task.completed, total=task.total, rate=self._rate(task))

    def _on_close(self, task: Task) -> None:
        import sys

        self._on_update(task)
        if task in self._open:
            self._open.remove(task)
        if not self._open and self._progress is not None:
            self._halt(failing=sys.exc_info()[0] is not None)

    def _halt(self, failing: bool) -> None:
        """Stop the live display. When a command fails and stderr is a pipe or a file, the bars'
        last frame is dropped, so the error is the one line there (a terminal keeps the frame)."""
        if failing and not self.console.is_terminal:
            for handle in list(self._progress.task_ids):
                self._progress.update(handle, visible=False)
        self._progress.stop()
        self._progress = None

    def _on_message(self, kind: str, text: str) -> None:
        style = "dim" if kind == "note" else "yellow"
        label = "" if kind == "note" else "warning: "
        target = self._progress.console if self._progress is not None else self.console
        from rich.markup import escape

        target.print(f"[{style}]{label}{escape(text)}[/{style}]", markup=True, highlight=False, soft_wrap=True)

    def stop(self) -> None:
        """Stop drawing (an error or an interrupt is about to be printed)."""
        if self._progress is not None:
            self._halt(failing=True)

    def interrupted_line(self) -> str:
        """What an interrupted command had done, for the one line the CLI prints."""
        return interrupted_line(self.last)


_REPORTER: RichReporter | None = None


def reporter() -> RichReporter:
    """The command's reporter (one per process, so the error boundary can ask what was running)."""
    global _REPORTER
    if _REPORTER is None:
        _REPORTER = RichReporter()
    return _REPORTER


def current() -> RichReporter | None:
    return _REPORTER


def interrupted_line(task: Any = None) -> str:
    """The one line an interrupted command prints: what the running task had done, if one was running."""
    if task is None:
        return "interrupted: finished work is kept; run the same command again to resume"
    of = f" of {task.total}" if task.total else ""
    return (f"interrupted during {task.description.strip()} ({task.completed}{of} {task.unit} done): "
            "finished work is kept; run the same command again to resume")


def number(value: Any, digits: int = 4) -> str:
    """A metric for a table: ``-`` when absent, scientific when tiny, else ``digits`` decimals."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2e}" if value != 0 and abs(value) < 1e-2 else f"{value:.{digits}f}"
    return str(value)
