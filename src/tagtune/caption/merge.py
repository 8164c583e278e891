"""Combining the parts of sharded ``caption infer`` runs into one output: ``tagtune caption merge DIR``.

Each shard of ``caption infer --shard I/N`` appends to its own ``<name>.shard-0000I-of-0000N.jsonl``
beside the output (:func:`tagtune.caption.infer.output_path`); :func:`merge_dir` (``caption merge
DIR``, and the next unsharded run with the same output) folds them into ``<name>.jsonl``. The rules
are ``tagtune tta merge``'s:

* an id twice in one file, or in two parts with different lines, is an error (exit 2);
* the same line in two places (a merge interrupted after writing, shards rerun with another N)
  is kept once; a part's line replaces the merged file's line for the same id (it is newer);
* the lines must all come from one setup: the same ``provenance.caption`` apart from the row's
  seed, and the same recorded config (``<part>.config.yaml``) apart from what each worker sets
  for itself (shard, batch size, threads, device, paths); mixed settings are an error;
* a torn last line (a shard killed mid-append) is cut, as a resumed run would.

Lines are written in the order of the input the runs captioned (named in the parts' recorded
config), so the merged file is the one an unsharded run writes; when that input cannot be read,
in the parts' order. The merged file is written to a temporary name and renamed, and the parts
(with their configs) are deleted only after that, so an interrupted merge loses nothing. Parts
still being written by a running shard are locked and refused.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption.config import COMMANDS, INFER, InferConfig
from tagtune.caption.data import read_tag_sets
from tagtune.config.commands import siblings_of
from tagtune.config.saved import sidecar_config
from tagtune.config.typed import build, replace
from tagtune.errors import InputError, OutputError, TagtuneError
from tagtune.files.resumable import atomic_path, dumps_line, iter_jsonl, locked, repair_tail
from tagtune.records.taxonomy import Taxonomy

PART = re.compile(r"^(?P<stem>.+)\.shard-(?P<index>\d{5})-of-(?P<count>\d{5})(?P<suffix>\.[^.]+)$")
# recorded settings each worker sets for itself: they may differ between the parts of one run
PER_WORKER = ("paths", "infer.shard", "infer.overwrite", "infer.output", "generation.batch_size", "device", "model.threads")
_BUSY = "wait for every shard to finish, then run `tagtune caption merge` again"


@dataclass
class MergeReport:
    """What merging one output's parts found and did."""

    output: Path
    parts: list[Path]
    lines: int = 0
    merged: bool = False
    replaced: int = 0
    deduplicated: int = 0
    missing: list[str] = field(default_factory=list)  # shard tags (shard-00001-of-00003) with no part here
    order: str = "input"  # "input", or why the lines kept the parts' order


def part_groups(folder: Path) -> dict[Path, list[Path]]:
    """The shard parts in ``folder`` by the output they belong to (``caps.jsonl``: ``caps.shard-*-of-*.jsonl``)."""
    groups: dict[Path, list[Path]] = {}
    for path in sorted(Path(folder).iterdir()):
        match = PART.match(path.name)
        if match and path.is_file():
            groups.setdefault(path.with_name(match["stem"] + match["suffix"]), []).append(path)
    return groups


def parts_of(output: Path) -> list[Path]:
    return part_groups(output.parent).get(output, []) if output.parent.is_dir() else []


def recorded_config(part: Path) -> Path:
    """Where ``caption infer`` recorded a part's config (its ``-o`` sidecar, else the run folder's)."""
    sidecar = part.with_name(part.name + ".config.yaml")
    return sidecar if sidecar.is_file() else part.parent / "config.yaml"


def merge_dir(folder: str | Path, write: bool = True) -> list[MergeReport]:
    """Merge every group of shard parts in ``folder`` into its output (``caption merge DIR``).

    Raises:
        InputError: Not a folder, duplicate ids, mixed settings (nothing is changed then).
        OutputError: A part is still being written, or the folder is not writable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("not a directory", folder, hint="pass the folder holding the parts (beside infer.output)")
    reports = []
    for output, parts in part_groups(folder).items():
        cfg, order, why = _recorded_run(parts[0])
        report = merge_output(output, order, write)
        report.order = why or "input"
        if report.merged and cfg is not None and not output.with_name(output.name + ".config.yaml").exists():
            sidecar_config(replace(cfg, {"infer.shard": None}), output)  # one output, one config: as an unsharded run
        reports.append(report)
    return reports


def _recorded_run(part: Path) -> tuple[InferConfig | None, list[str] | None, str | None]:
    """The config a part was written with and its input's ids in order, or why they are unknown."""
    import yaml

    path = recorded_config(part)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        cfg = build(InferConfig, data, command=INFER.name, siblings=siblings_of(INFER, COMMANDS))
    except (OSError, ValueError, TagtuneError, yaml.YAMLError) as exc:
        return None, None, f"no readable config of `caption infer` at {path} ({_first_line(exc)})"
    try:
        rows = read_tag_sets(cfg.infer, cfg.data, Taxonomy.load(cfg.data.taxonomy_path))
    except (OSError, TagtuneError) as exc:
        return cfg, None, f"cannot read the input {cfg.infer.input} ({_first_line(exc)})"
    return cfg, [r.id for r in rows], None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def merge_output(output: Path, order: Sequence[str] | None = None, write: bool = True) -> MergeReport:
    """Check ``output`` and its shard parts and combine them, lines in ``order`` of ids when given.

    Args:
        output: The file an unsharded ``caption infer`` writes (its parts sit beside it).
        order: The input's ids in order (ids not in it go last, in the files' order).
        write: Write the merged file and remove the parts (False: check only).
    """
    parts = parts_of(output)
    report = MergeReport(output=output, parts=parts, missing=_missing(parts))
    sources = ([output] if output.exists() else []) + parts
    if not parts:
        report.lines = sum(1 for _ in iter_jsonl(output)) if output.exists() else 0
        return report
    with locked_all(sources):
        winner = _winners(sources, output, report)
        _check_settings(sources, winner)
        _check_recorded(parts)
        report.lines = len(winner)
        if write:
            _write(output, winner, order)
            for part in parts:
                try:
                    part.unlink()
                    part.with_name(part.name + ".config.yaml").unlink(missing_ok=True)
                except OSError as exc:
                    raise OutputError(f"{part}: merged into {output.name} but cannot be removed ({exc.strerror})") from exc
            report.merged = True
    return report


@contextlib.contextmanager
def locked_all(paths: list[Path], hint: str = _BUSY) -> Iterator[None]:
    """Exclusive locks on every file (of a merge, or of an ``--overwrite``): no run may still be writing one."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(locked(path, hint))
        yield


def _missing(parts: list[Path]) -> list[str]:
    found = {(int(m["index"]), int(m["count"])) for p in parts if (m := PART.match(p.name))}
    return [f"shard-{i:05d}-of-{n:05d}" for n in sorted({n for _, n in found}) for i in range(n) if (i, n) not in found]


@dataclass
class _Line:
    source: int
    line: int
    text: str  # the line as it is written back
    record: dict[str, Any]


def _winners(sources: list[Path], output: Path, report: MergeReport) -> dict[str, _Line]:
    """Which line wins for each id (a part's over the merged file's; identical lines once)."""
    winner: dict[str, _Line] = {}
    in_parts: dict[str, _Line] = {}  # first part line of each id
    for index, path in enumerate(sources):
        repair_tail(path)
        in_file: set[str] = set()
        for line, rec in iter_jsonl(path):
            ident = rec.get("id")
            if not isinstance(ident, str) or not ident:
                raise InputError("caption line has no id", path, line, field="id")
            if ident in in_file:
                raise InputError(f"duplicate id '{ident}' within the file", path, line, field="id",
                                 hint="the file was written by two runs at once; remove one of the lines")
            in_file.add(ident)
            here = _Line(index, line, dumps_line(rec), rec)
            if path != output:
                other = in_parts.setdefault(ident, here)
                if other.text != here.text:
                    raise InputError(
                        f"duplicate id '{ident}': also in {sources[other.source].name}:{other.line} with different content",
                        path, line, field="id",
                        hint="two shards captioned the same tag set differently; delete the line you do not want")
            prev = winner.get(ident)
            if prev is not None and prev.text == here.text:
                report.deduplicated += 1
                continue
            report.replaced += prev is not None  # a part's line is newer than the merged file's
            winner[ident] = here
    return winner


def _settings(rec: dict[str, Any]) -> dict[str, Any] | None:
    prov = (rec.get("provenance") or {}).get("caption")
    return {k: v for k, v in prov.items() if k != "seed"} if isinstance(prov, dict) else None


def _check_settings(sources: list[Path], winner: dict[str, _Line]) -> None:
    """Every line that stays must come from the same model, prompt and sampling settings."""
    first: _Line | None = None
    for here in winner.values():
        settings = _settings(here.record)
        if settings is None:
            raise InputError("no provenance.caption: not a line of `caption infer`", sources[here.source], here.line)
        if first is None:
            first = here
            continue
        diff = _difference(settings, _settings(first.record), "provenance.caption")
        if diff:
            raise InputError(f"mixed settings: {diff[0]} is {diff[1]!r} here but {diff[2]!r} in "
                             f"{sources[first.source].name}:{first.line}", sources[here.source], here.line,
                             hint="merge the parts of one setup only; run the odd shard again with the others' settings")


def _check_recorded(parts: list[Path]) -> None:
    """The parts' recorded configs must agree, apart from what each worker sets for itself."""
    import yaml

    seen: tuple[Path, dict[str, Any]] | None = None
    for part in parts:
        sidecar = part.with_name(part.name + ".config.yaml")
        if not sidecar.is_file():
            continue
        try:
            data = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue  # a damaged record: the lines' provenance still decides
        if not isinstance(data, dict):
            continue
        if seen is None:
            seen = (part, data)
            continue
        diff = _difference(data, seen[1], "", skip=PER_WORKER)
        if diff:
            raise InputError(f"mixed settings: {part.name} was written with {diff[0]}={diff[1]!r}, "
                             f"{seen[0].name} with {diff[0]}={diff[2]!r}", sidecar,
                             hint="merge the parts of one setup only; run the odd shard again with the others' settings")


def _difference(a: Any, b: Any, prefix: str, skip: Sequence[str] = ()) -> tuple[str, Any, Any] | None:
    """The first dotted key whose values differ (``generation.temperature``), with both values."""
    if prefix in skip:
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            found = _difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key), skip)
            if found:
                return found
        return None
    return None if a == b else (prefix, a, b)


def _write(output: Path, winner: dict[str, _Line], order: Sequence[str] | None) -> None:
    position = {ident: i for i, ident in enumerate(order or ())}
    lines = sorted(winner.items(), key=lambda item: (position.get(item[0], len(position)), item[1].source, item[1].line))
    with atomic_path(output) as tmp:
        with open(tmp, "w", encoding="utf-8") as out:
            out.writelines(here.text for _, here in lines)
            out.flush()
            os.fsync(out.fileno())
