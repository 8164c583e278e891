"""The one harness that stops a running job with a signal: SIGKILL (crash) or SIGINT (Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def _own_group_default_sigint() -> None:
    """In the child, before exec: a new session (so the whole job can be signalled as a group) and
    default SIGINT handling (background jobs of non-interactive shells inherit SIGINT ignored)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def signal_when(
    argv: Sequence[str],
    ready: Callable[[], bool],
    *,
    sig: int = signal.SIGKILL,
    timeout: float = 300.0,
    poll: float = 0.01,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    log: str | Path | None = None,
    exit_timeout: float = 120.0,
) -> int:
    """Start ``argv`` in its own process group, send ``sig`` to the group once ``ready()`` holds.

    ``ready`` is polled every ``poll`` seconds for at most ``timeout`` seconds. If the command ends
    first, nothing is sent and its own exit status comes back, so a test can assert on
    ``-signal.SIGKILL`` (or 130 after SIGINT) to be sure the signal landed mid-run. After a signal
    other than SIGKILL the command gets ``exit_timeout`` seconds to stop on its own; then (and on
    any error in the test) the group is killed, so no job outlives the test.

    Args:
        log: A file that receives the command's stdout and stderr (default: discarded).
        env: Added to this process's environment.

    Returns:
        The exit status as ``Popen.returncode`` gives it (``-9`` for SIGKILL).
    """
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(map(str, argv)), cwd=cwd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            preexec_fn=_own_group_default_sigint,  # noqa: PLW1509 -- no threads to deadlock in the child
        )
    finally:
        if log is not None:
            out.close()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ready():
                os.killpg(proc.pid, sig)
                break
            time.sleep(poll)
        if sig != signal.SIGKILL:
            try:
                proc.wait(timeout=exit_timeout)
            except subprocess.TimeoutExpired:
                pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return proc.returncode
