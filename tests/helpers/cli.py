"""Running the real CLI: in this process (fast) or in a subprocess (the console entry point).

:func:`run_cli` goes through ``tagtune.cli.main``, the single error boundary, so exit codes and
the one-line error messages are exactly what a user sees; only interpreter start-up is saved.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple


class CliResult(NamedTuple):
    """Exit code and captured output of one in-process CLI run; unpacks as ``code, out, err``."""

    code: int
    out: str
    err: str

    def error(self, *needles: str, only: bool = True) -> str:
        """The run's one error line (see :func:`error_line`), after checking it failed with exit 2."""
        assert self.code == 2, f"exit {self.code}, expected 2\nstdout: {self.out[-2000:]}\nstderr: {self.err[-2000:]}"
        return error_line(self.err, *needles, only=only)


@contextlib.contextmanager
def _environ(env: Mapping[str, str] | None) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_cli(*args: object, env: Mapping[str, str] | None = None) -> CliResult:
    """Run ``tagtune ARGS`` in this process through ``tagtune.cli.main``; never raises SystemExit.

    stdout and stderr are redirected for the duration of the call (rich consoles look them up
    when they print, so progress, notes and results all land here). ``env`` is set for the call
    and restored afterwards.
    """
    from tagtune.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with _environ(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def error_line(err: str, *needles: str, only: bool = True) -> str:
    """The single ``error: ...`` line of a failed command's stderr, checked for ``needles``.

    Args:
        only: The error line must be all there is on stderr (False: other lines, such as notes
            printed before the failure, are allowed; there must still be exactly one error line).
    """
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    if only:
        assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert len(errors) == 1, f"expected one error line, got:\n{err}"
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def tagtune_argv(*args: object) -> list[str]:
    """The argv of ``python -m tagtune ARGS`` with this interpreter."""
    return [sys.executable, "-m", "tagtune", *map(str, args)]


def run_tagtune(*args: object, cwd: str | Path | None = None, env: Mapping[str, str] | None = None,
                timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (``python -m tagtune ARGS``) and capture its output.

    ``env`` is added to this process's environment (which the test conftest has made offline and
    pointed at the test model cache).
    """
    return subprocess.run(tagtune_argv(*args), cwd=cwd, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
