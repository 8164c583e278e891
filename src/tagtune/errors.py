"""The error types tagtune raises for problems the user can fix.

Every one of them reaches the CLI's single error boundary (``tagtune.cli.main``), which prints
one line ``error: <message> (hint: <hint>)`` and exits with code 2. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class TagtuneError(Exception):
    """A problem with the user's input, config, files or environment (exit code 2).

    Args:
        message: What is wrong, naming the culprit (file, line, field, key, model...).
        hint: The next thing to try; printed after the message.
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


class ConfigError(TagtuneError):
    """A bad override, unknown preset/option, or a config value of the wrong type or range.

    Args:
        key: The dotted config key at fault, when there is one (the CLI adds the flag that sets it).
    """

    def __init__(self, message: str, hint: str | None = None, key: str | None = None):
        super().__init__(message, hint)
        self.key = key


class InputError(TagtuneError):
    """Malformed user data. Names the file, the line (1-based) and the field when known."""

    def __init__(
        self,
        message: str,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
            where += ": "
        if field is not None:
            message = f"field '{field}': {message}"
        super().__init__(where + message, hint)
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field


class TaxonomyError(InputError):
    """An invalid taxonomy (duplicate tag, empty category, non-string tag...)."""


class ModelNotFoundError(TagtuneError):
    """A model, adapter or model directory that cannot be found or loaded."""


class DependencyError(TagtuneError):
    """An optional dependency or hardware (CUDA, an extra) that is missing."""


class OutputError(TagtuneError):
    """An output location that cannot be written (read-only, full disk, existing file...)."""


class Interrupted(BaseException):
    """Ctrl-C (SIGINT) reached a running job (exit 130). A BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` swallows it; unlike KeyboardInterrupt, Typer and Lightning let it
    through to the CLI, which says what was kept and how to resume."""

    exit_code = 130

    def __init__(self, during: str = ""):
        super().__init__(during)
        self.during = during


class ModelQualityError(TagtuneError):
    """A model that loads but fails a self-test (collapsed embeddings): its scores would mislead."""
