"""Batched, resumable, shardable caption generation: ``tagtune caption infer``.

Tag sets are read by the one tag-set reader (:mod:`tagtune.records.reader`, file:line:field errors), this
worker's shard is selected, ids already captioned in the output are skipped, and the rest is
captioned in batches by the ``model.backend`` member of the ``caption_backends`` family
(:mod:`tagtune.caption.backends`: the LLM, a baseline, or yours). Each finished batch is appended
to the JSONL output in whole lines (so a SIGKILL loses at most the batch in flight) as
:class:`~tagtune.records.rows.CaptionRow` lines: every input field kept, ``caption`` and
``provenance.caption`` added.

Sampling is seeded per row (:func:`tagtune.models.sampling.seed_for_row`): each tag set draws from
its own generator, seeded from ``seed`` and the row's id (a counterfactual pair's ``pair_id``, so
both members of a pair draw alike). A row's caption therefore does not depend on which rows share
its batch, the batch size, the shard or whether the run was resumed -- up to floating-point
differences between padded and unpadded attention, which can flip a draw that lands on a
probability boundary (rare in float32 on CPU; more frequent in half precision on GPU).

A sharded run (``--shard I/N``) writes ``<name>.shard-0000I-of-0000N.jsonl`` beside the output;
``caption merge`` combines the parts, and so does the next unsharded run with the same output.

One writer per output, and a failed start changes nothing: the output's lock is taken before
anything is removed or replaced (``--overwrite`` deletes the old output, and its shard parts, only
while holding their locks, so a second run exits 2 while the first keeps writing), the settings
beside it (``<output>.config.yaml``) are saved only once the model has loaded, and ``--overwrite``
loads the model before deleting anything. A model that cannot load leaves no new file behind.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption.backends import CaptionBackend, load_backend
from tagtune.caption.config import InferConfig
from tagtune.caption.data import read_tag_sets
from tagtune.caption.lint import lint
from tagtune.caption.merge import MergeReport, locked_all, merge_output, parts_of
from tagtune.config.saved import prepare_run_dir, sidecar_config
from tagtune.errors import ConfigError
from tagtune.files.readers import resolve_path
from tagtune.files.resumable import JsonlAppender, iter_jsonl, repair_tail
from tagtune.files.runs import check_ours, first_line_has
from tagtune.files.sharding import Shard, resolve_shard
from tagtune.models.device import torch_threads
from tagtune.models.sampling import seed_for_row
from tagtune.records.rows import CaptionRow, TagSetRow
from tagtune.records.taxonomy import Taxonomy
from tagtune.report import SILENT, Reporter


@dataclass
class InferResult:
    """What ``infer`` did; ``seconds`` covers the batch loop (tokenize, generate, clean, write), of
    which ``write_seconds`` was spent in fsync'ed appends."""

    output: str
    total: int
    owned: int
    written: int = 0
    already_done: int = 0
    empty: int = 0
    linted: int = 0  # captions that still break a lint rule (infer.lint=flag|retry)
    shard: str = "0/1"
    model: str = ""
    adapter: str | None = None
    quantized: bool = False
    load_seconds: float = 0.0
    seconds: float = 0.0
    write_seconds: float = 0.0
    notices: list[str] = field(default_factory=list)
    merged: MergeReport | None = None  # shard parts an unsharded run folded in first

    @property
    def captions_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def output_path(cfg: InferConfig, shard: Shard) -> tuple[Path, bool]:
    """The JSONL this worker writes and whether it was given explicitly (``infer.output``)."""
    explicit = cfg.infer.output
    path = Path(explicit).expanduser() if explicit else Path(cfg.paths.output_dir).expanduser() / "captions.jsonl"
    if shard.is_sharded:
        path = path.with_name(f"{path.stem}.{shard.tag}{path.suffix or '.jsonl'}")
    return path, bool(explicit)


def _check_output(out: Path, source: str) -> None:
    if out.is_dir():
        raise ConfigError(f"output {out} is a directory, not a file", key="infer.output",
                          hint="give a file name such as captions.jsonl")
    if out.exists() and out.resolve() == resolve_path(source).resolve():
        raise ConfigError(f"output {out} is the input file", key="infer.output",
                          hint="write the captions to another file; the input is read, never overwritten")
    check_ours(out, "caption infer", first_line_has("provenance", "caption"))  # resume ours, never touch yours


def output_record(row: TagSetRow, caption: str, prov: dict[str, Any], seed: int, taxonomy: Taxonomy) -> dict[str, Any]:
    """The output line: the tag set's fields, ``caption`` (an input caption moves to ``reference_caption``)."""
    fields = {k: getattr(row, k) for k in ("id", "tags", "pair_id", "concept", "edit", "extra", "line")}
    out = CaptionRow(**fields, caption=caption, reference_caption=row.caption,
                     provenance={**row.provenance, "caption": {**prov, "seed": seed_for_row(seed, row)}})
    return out.to_record(taxonomy)


def infer(cfg: InferConfig, reporter: Reporter = SILENT, backend: CaptionBackend | None = None) -> InferResult:
    """Caption every tag set of ``infer.input`` into a resumable JSONL (``infer.output``).

    Args:
        cfg: The typed config of ``caption infer``.
        reporter: Receives progress and notes.
        backend: A ready caption backend to use (benchmarks and tests pass one holding an already
            loaded model); built from ``model.backend`` when None.

    Raises:
        InputError: Bad input lines, duplicate ids, a missing tags column, shard parts that cannot be merged.
        ConfigError: The output is the input or a directory; an unknown ``model.backend``.
        OutputError: Another run is writing the output (or, with ``--overwrite``, one of its shard parts).
        ModelNotFoundError: The model or adapter cannot be loaded.
    """
    shard = resolve_shard(cfg.infer.shard)
    taxonomy = Taxonomy.load(cfg.data.taxonomy_path)
    model = _Model(backend or load_backend(cfg, taxonomy), reporter)
    out, explicit = output_path(cfg, shard)
    rows = read_tag_sets(cfg.infer, cfg.data, taxonomy)
    _check_output(out, str(cfg.infer.input))
    mine = [r for r in rows if shard.owns(r.id)]
    if not explicit:
        prepare_run_dir(cfg, out.parent)
    result = InferResult(str(out), len(rows), len(mine), shard=str(shard), model=cfg.model.name,
                         adapter=cfg.model.checkpoint_dir)
    if cfg.infer.overwrite:
        _start_over(out, shard, model if mine else None, result)
    elif not shard.is_sharded:
        result.merged = _fold_in_parts(out, [r.id for r in rows])
    created = _new_files(out, explicit)
    with JsonlAppender(out, key="id", done_when=_has_caption) as sink, _removed_if_left_empty(out, created):
        if explicit:
            sidecar_config(cfg, out)  # under the lock: a run refused as a second writer leaves the first's settings
        done = sink.done | (_merged_ids(cfg) if shard.is_sharded and not cfg.infer.overwrite else set())
        todo = [r for r in mine if r.id not in done]
        result.already_done = len(mine) - len(todo)
        if todo:
            model.load(result)
            _caption_all(cfg, model.backend, todo, sink, result, taxonomy, reporter)
    return result


class _Model:
    """The caption backend, loaded once, when there is something to caption (or before ``--overwrite`` deletes)."""

    def __init__(self, backend: CaptionBackend, reporter: Reporter):
        self.backend, self.reporter, self.loaded = backend, reporter, False

    def load(self, result: InferResult) -> None:
        if self.loaded:
            return
        start = time.perf_counter()
        result.notices = self.backend.load()
        result.load_seconds = time.perf_counter() - start
        self.loaded = True
        for text in result.notices:
            self.reporter.note(text)


_BUSY = "wait for the other run, or give each worker its own output (--shard I/N)"


def _start_over(out: Path, shard: Shard, model: _Model | None, result: InferResult) -> None:
    """``--overwrite``: delete the old output and (unsharded) its shard parts, holding all their locks.

    The locks come first: a file another run is writing is refused, never deleted under it (deleting
    first let a second writer start on a new file while the first went on writing the old one). They
    are tried before the model loads (a busy output is one line at once), and nothing is deleted
    until it has loaded (a model that cannot load leaves the old output as it was).
    """
    old = [p for p in [out, *([] if shard.is_sharded else parts_of(out))] if p.is_file()]
    with locked_all(old, _BUSY):
        pass
    if model is not None:
        model.load(result)
    with locked_all(old, _BUSY):
        for path in old:
            path.unlink()
            if path != out:  # a part's settings go with it; the output's are saved again
                path.with_name(path.name + ".config.yaml").unlink(missing_ok=True)


def _new_files(out: Path, explicit: bool) -> list[Path]:
    """The output and its settings file when this run is about to create them."""
    files = [out, out.with_name(out.name + ".config.yaml")] if explicit else [out]
    return files if not out.exists() else []


@contextlib.contextmanager
def _removed_if_left_empty(out: Path, created: list[Path]) -> Iterator[None]:
    """A run that fails before writing a line (a model that cannot load) removes the files it created:
    no empty output is left to look like a finished run. Runs inside the output's lock."""
    try:
        yield
    except BaseException:
        if created and out.is_file() and out.stat().st_size == 0:
            for path in created:
                path.unlink(missing_ok=True)
        raise


def _fold_in_parts(out: Path, order: list[str]) -> MergeReport | None:
    """An unsharded run first merges the output's shard parts."""
    return merge_output(out, order) if parts_of(out) else None


def _merged_ids(cfg: InferConfig) -> set[str]:
    """Ids already captioned in the merged output: a sharded run does not caption them again."""
    merged, _ = output_path(cfg, Shard())
    if not merged.is_file():
        return set()
    repair_tail(merged)
    return {str(rec["id"]) for _, rec in iter_jsonl(merged) if _has_caption(rec)}


def _has_caption(record: dict[str, Any]) -> bool:
    return isinstance(record.get("caption"), str) and bool(record["caption"].strip())


def _linted(backend: CaptionBackend, rows: list[TagSetRow], captions: list[str], cfg: InferConfig) -> tuple[list[str], list[list[str]]]:
    """Lint the captions; with ``infer.lint=retry`` draw failing ones again (next seeds) up to the retries."""
    flags = [lint(c) for c in captions]
    if cfg.infer.lint != "retry":
        return captions, flags
    for attempt in range(1, cfg.infer.lint_retries + 1):
        redo = [i for i, f in enumerate(flags) if f and not rows[i].pair_id]  # pairs keep their shared seed
        if not redo:
            break
        again = backend.generate([rows[i] for i in redo], cfg.seed + attempt)  # the next seed of the schedule
        for i, caption in zip(redo, again, strict=True):
            found = lint(caption)
            if len(found) < len(flags[i]):
                captions[i], flags[i] = caption, found
    return captions, flags


def _caption_all(cfg: InferConfig, backend: CaptionBackend, todo: list[TagSetRow], sink: Any, result: InferResult,
                 taxonomy: Taxonomy, reporter: Reporter) -> None:
    prov, batch_size = backend.provenance(), cfg.generation.batch_size
    result.quantized = bool(prov.get("quantized"))
    loop_start = time.perf_counter()
    with _threads(backend, cfg.model.threads), reporter.progress("captioning", total=len(todo), unit="captions") as task:
        for i in range(0, len(todo), batch_size):
            batch = todo[i:i + batch_size]
            captions = backend.generate(batch, cfg.seed)
            if cfg.infer.lint != "off":
                captions, flags = _linted(backend, batch, captions, cfg)
                result.linted += sum(1 for f in flags if f)
            result.empty += sum(1 for c in captions if not c)
            t_write = time.perf_counter()
            sink.append(output_record(r, c, prov, cfg.seed, taxonomy) for r, c in zip(batch, captions, strict=True))
            result.write_seconds += time.perf_counter() - t_write
            result.written += len(batch)
            task.advance(len(batch))
    result.seconds = time.perf_counter() - loop_start


def _threads(backend: CaptionBackend, threads: int | None) -> Any:
    """``model.threads`` torch threads for a backend that runs a model (no torch import for the others)."""
    if not backend.loads_weights:
        return contextlib.nullcontext()
    return torch_threads(threads)
