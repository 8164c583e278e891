"""Shared test helpers: one way each to run the CLI, stop a run with a signal, and read JSONL.

Importable from every test module as ``from helpers import ...`` (tests/conftest.py puts the
tests directory on ``sys.path``; pytest runs with ``--import-mode=importlib``, which does not).

* :func:`run_cli` -- ``tagtune.cli.main([...])`` in this process: ``(code, out, err)``.
* :func:`run_tagtune` -- ``python -m tagtune ...`` in a subprocess: a ``CompletedProcess``.
* :func:`signal_when` -- start a subprocess in its own process group, send it a signal once a
  readiness predicate holds (SIGKILL by default, SIGINT for Ctrl-C), return its exit status.
* :func:`read_jsonl` / :func:`write_jsonl` / :func:`count_lines` -- JSON Lines files.
"""

from helpers.cli import CliResult, error_line, run_cli, run_tagtune, tagtune_argv
from helpers.jsonl import count_lines, read_jsonl, write_jsonl
from helpers.signals import signal_when

__all__ = [
    "CliResult",
    "count_lines",
    "error_line",
    "read_jsonl",
    "run_cli",
    "run_tagtune",
    "signal_when",
    "tagtune_argv",
    "write_jsonl",
]
