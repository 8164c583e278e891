"""How stage code tells the user what it is doing, without drawing or printing anything itself.

Stage functions (``vae``, ``caption``, ``tta``, ``pipeline``) take a :class:`Reporter` and return
a result object. The reporter receives progress (tasks with a total and a count), notes and
warnings; what happens to them is the caller's business: the CLI draws rich progress bars on
stderr (:mod:`tagtune.cli.render`), the pipeline nests one reporter per stage, tests use
:class:`CaptureReporter`, and library callers get the silent default, :data:`SILENT`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Task:
    """One progress line: ``completed`` of ``total`` ``unit`` since ``started``, plus free ``info``."""

    description: str
    total: int | None = None
    unit: str = "items"
    completed: int = 0
    info: str = ""
    started: float = field(default_factory=time.perf_counter)
    reporter: Any = field(default=None, repr=False)
    handle: Any = field(default=None, repr=False)  # the renderer's own id for this task
    closed: bool = False

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.completed += n
        if info is not None:
            self.info = info
        self.reporter._on_update(self)

    def update(self, completed: int | None = None, total: int | None = None, info: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if info is not None:
            self.info = info
        self.reporter._on_update(self)

    def rate(self) -> float:
        """Units per second so far."""
        elapsed = time.perf_counter() - self.started
        return self.completed / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.reporter._on_close(self)


class Reporter:
    """The silent base reporter: every method is a no-op; renderers override the ``_on_*`` hooks."""

    prefix: str = ""

    def start(self, description: str, total: int | None = None, unit: str = "items") -> Task:
        """Open a progress task; call ``close()`` when done (or use :meth:`progress`)."""
        task = Task(f"{self.prefix}{description}", total, unit, reporter=self)
        self._on_start(task)
        return task

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None = None, unit: str = "items") -> Iterator[Task]:
        task = self.start(description, total, unit)
        try:
            yield task
        finally:
            task.close()

    def note(self, text: str) -> None:
        """Something worth knowing (what was read, what was skipped, a choice that was made)."""
        self._on_message("note", f"{self.prefix}{text}")

    def warn(self, text: str) -> None:
        """Something that may need the user's attention; the run goes on."""
        self._on_message("warning", f"{self.prefix}{text}")

    def child(self, label: str) -> Reporter:
        """A reporter whose tasks and messages are labelled ``[label]`` (the pipeline's stages)."""
        return _Child(self, label)

    # -- renderer hooks ---------------------------------------------------------------------------
    def _on_start(self, task: Task) -> None:
        pass

    def _on_update(self, task: Task) -> None:
        pass

    def _on_close(self, task: Task) -> None:
        pass

    def _on_message(self, kind: str, text: str) -> None:
        pass


class _Child(Reporter):
    def __init__(self, parent: Reporter, label: str):
        self.parent = parent
        self.prefix = f"[{label}] "

    def _on_start(self, task: Task) -> None:
        task.reporter = self
        self.parent._on_start(task)

    def _on_update(self, task: Task) -> None:
        self.parent._on_update(task)

    def _on_close(self, task: Task) -> None:
        self.parent._on_close(task)

    def _on_message(self, kind: str, text: str) -> None:
        self.parent._on_message(kind, text)


SILENT = Reporter()


class CaptureReporter(Reporter):
    """Keeps everything it is told (for tests): ``notes``, ``warnings`` and the finished ``tasks``."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.tasks: list[Task] = []
        self.updates = 0

    def _on_start(self, task: Task) -> None:
        self.tasks.append(task)

    def _on_update(self, task: Task) -> None:
        self.updates += 1

    def _on_message(self, kind: str, text: str) -> None:
        (self.notes if kind == "note" else self.warnings).append(text)
