"""``tagtune dataset report``: one static HTML page about a dataset folder, to read or to publish.

The page is self-contained: styles, a small filter script and the figures (matplotlib PNGs from
:mod:`tagtune.records.plots` as ``data:`` URIs) are inline, nothing is fetched at view time. The
audio is not embedded: each player points at its clip by a path relative to the page, so the page
stays small for any dataset size and works wherever the page and the dataset keep their places;
``copy_audio`` copies the sampled clips into ``<page>-audio/`` beside the page, to publish both.
A page carries a marker comment, and a file without it is never overwritten.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import quote

from tagtune import __version__
from tagtune.errors import ConfigError, InputError
from tagtune.files.readers import resources_dir
from tagtune.files.resumable import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    ensure_dir,
    output_error,
)
from tagtune.files.runs import check_ours, claim_dir
from tagtune.pipeline import report_sections as sections
from tagtune.pipeline.export import find_dataset_dir
from tagtune.pipeline.report_data import Clip, Concept, ReportData, gallery, load
from tagtune.report import SILENT, Reporter

COMMAND = "tagtune dataset report"
MARKER = "<!-- written by tagtune dataset report -->"  # on the page's first line: what check_ours looks for
COPIED = ".tagtune-report.json"  # in the audio folder: the clips the last report copied there


@dataclass
class ReportResult:
    path: Path
    clips: int  # rows in the dataset
    concepts: int  # tags with a gallery section
    shown: int  # distinct clips on the page
    size_bytes: int  # the page alone
    audio_dir: Path | None = None  # where --copy-audio put the clips
    copied: int = 0


def is_report(path: Path) -> bool:
    """``is_ours`` for :func:`~tagtune.files.runs.check_ours`: a page an earlier report wrote."""
    try:
        with open(path, "rb") as fh:
            return MARKER.encode() in fh.read(512)
    except OSError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def write_report(path: Path, out: Path | None = None, per_concept: int = 4, copy_audio: bool = False,
                 seed: int = 0, reporter: Reporter = SILENT) -> ReportResult:
    """Write the report page of the dataset at ``path`` (a run folder or its ``dataset/``) to ``out``.

    Args:
        out: The page [default: ``report.html`` beside the dataset folder].
        per_concept: Clips per tag in the gallery (a seeded sample; pairs of the tag first).
        copy_audio: Copy the sampled clips beside the page (to publish it) instead of pointing at the dataset.

    Raises:
        InputError: No dataset, an unreadable metadata file, a sampled clip that is missing.
        OutputError: ``out`` is a folder, or a file this command did not write; it cannot be written.
        ConfigError: ``per_concept`` below 1; ``copy_audio`` with the page inside the dataset folder.
    """
    if per_concept < 1:
        raise ConfigError(f"--per-concept must be at least 1 (got {per_concept})", hint="4 clips per tag is the default")
    ds_dir = find_dataset_dir(Path(path))
    out = Path(out) if out is not None else ds_dir.parent / "report.html"
    check_ours(out, COMMAND, is_report)
    if copy_audio and _inside(out, ds_dir):
        raise ConfigError(f"--copy-audio with the page inside the dataset folder ({out}): the clips are already there",
                          hint="leave out --copy-audio, or write the page outside the dataset folder")
    data = load(ds_dir, reporter)
    concepts = gallery(data, per_concept, seed)
    shown = list({id(c): c for con in concepts for c in con.shown}.values())
    for clip in shown:
        if not clip.audio.is_file():
            raise InputError(f"audio file {clip.audio.name} is missing", clip.meta, clip.line, "file_name",
                             hint="rebuild the dataset folder with `tagtune pipeline run`")
    ensure_dir(out.parent)
    audio_dir = out.parent / f"{out.stem}-audio" if copy_audio else None
    src = _copy_clips(shown, audio_dir, reporter) if audio_dir else {id(c): c.audio for c in shown}
    page = render(data, concepts, lambda c: _url(src[id(c)], out.parent), {"per_concept": per_concept, "seed": seed})
    try:
        atomic_write_text(out, page)
    except OSError as exc:
        raise output_error(out, exc) from exc
    return ReportResult(out, len(data.clips), len(concepts), len(shown), len(page.encode("utf-8")), audio_dir,
                        len(shown) if audio_dir else 0)


def _url(target: Path, page_dir: Path) -> str:
    """The clip's address relative to the page's folder (a URL: percent-encoded, forward slashes)."""
    try:
        rel = os.path.relpath(os.path.abspath(target), os.path.abspath(page_dir))
    except ValueError as exc:  # another drive (Windows): no relative path exists
        raise ConfigError(f"{target} cannot be reached from the page by a relative path",
                          hint="pass --copy-audio, or write the page on the dataset's drive") from exc
    return quote(Path(rel).as_posix())


def _copy_clips(clips: Sequence[Clip], folder: Path, reporter: Reporter) -> dict[int, Path]:
    """Copy the sampled clips to ``folder/<split>/``; clips an earlier report copied there and this
    one does not show are removed (files of other origins are never touched)."""
    claim_dir(folder, f"{COMMAND} --copy-audio")
    listing = folder / COPIED
    try:
        earlier = set(json.loads(listing.read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError, AttributeError):
        earlier = set()
    placed: dict[int, Path] = {}
    with reporter.progress("copying the sampled clips", total=len(clips), unit="clips") as task:
        for clip in clips:
            dest = folder / clip.split / clip.audio.name
            ensure_dir(dest.parent)
            try:
                with atomic_path(dest) as tmp:
                    shutil.copyfile(clip.audio, tmp)
            except OSError as exc:
                raise output_error(dest, exc) from exc
            placed[id(clip)] = dest
            task.advance()
    now = {p.relative_to(folder).as_posix() for p in placed.values()}
    for stale in sorted(earlier - now):
        (folder / stale).unlink(missing_ok=True)
    atomic_write_json(listing, {"command": COMMAND, "files": sorted(now)})
    return placed


def _png(draw: Callable[[Path], Path], alt: str) -> sections.Html:
    """A figure drawn by :mod:`tagtune.records.plots`, inlined as a ``data:`` URI."""
    with tempfile.TemporaryDirectory(prefix="tagtune-report-") as tmp:
        data = draw(Path(tmp) / "figure.png").read_bytes()
    return sections.Html(f'<img class="figure" alt="{sections.esc(alt)}" '
                         f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">')


def _heatmap(data: ReportData) -> sections.Html:
    from tagtune.records import plots

    tax = data.taxonomy
    sets = {"dataset": tax.encode_many(c.tags for c in data.clips)}
    return _png(lambda p: plots.cooccurrence_plot(p, sets, tax, tag_labels=len(tax) <= 100),
                "co-occurrence of tags, taxonomy order, category borders in white")


def _distribution(name: str, series: Mapping[str, list[float]], xlabel: str, title: str) -> sections.Html:
    from tagtune.records import plots

    return _png(lambda p: plots.distribution_plot(p, series, xlabel, title), title)


def render(data: ReportData, concepts: Sequence[Concept], src: Callable[[Clip], str],
           settings: Mapping[str, int]) -> str:
    """The page: the template ``resources/report.html`` filled with the sections."""
    name = str((data.provenance.get("dataset") or {}).get("name") or data.ds_dir.name)
    folder = data.ds_dir.parent.name if data.ds_dir.name == "dataset" else data.ds_dir.name
    template = Template((resources_dir() / "report.html").read_text(encoding="utf-8"))
    return template.substitute(
        marker=MARKER, title=sections.esc(name), header=sections.header(data),
        summary=sections.summary(data), tags=sections.tag_counts(data), heatmap=_heatmap(data),
        realisation=sections.realisation(data), measured=sections.measured(data, _distribution),
        filters=sections.filters(data), gallery=sections.gallery(concepts, src),
        per_concept=settings["per_concept"], concepts=len(concepts),
        made=sections.esc(f"tagtune {__version__} dataset report of {folder}/ (--per-concept {settings['per_concept']}, "
                          f"--seed {settings['seed']})"),
    )
