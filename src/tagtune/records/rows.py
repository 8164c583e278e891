"""The rows that travel between the stages: one declared type per hop.

::

    tag sets      (vae sample)       TagSetRow    id, tags, <category lists>, provenance.tags
    captions      (caption infer)    CaptionRow   + caption, reference_caption, provenance.caption
    audio clips   (tta generate)     ClipRow      + file_name, duration, sample_rate, loudness_lufs, provenance.audio
    dataset       (pipeline run)     DatasetRow   + split, realised_tags, realisation, bpm, key (+ confidences)

One name per concept from the first file to the last: ``id``, ``tags``, ``caption``. Writers always
use these names (:meth:`TagSetRow.to_record`); :mod:`tagtune.records.reader` is the one reader.
Columns a user adds ride along unchanged in ``extra`` through every hop into the dataset.
``docs/schema.md`` is generated from the field declarations here (``scripts/gen_docs.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol


class Categorizer(Protocol):
    """What writing a row needs of a taxonomy: the row's tags grouped by category (one list per category)."""

    def by_category(self, tags: Sequence[str]) -> dict[str, list[str]]: ...

# The order of the fields in every written line (a row type writes the ones it declares).
FIELD_ORDER = ("file_name", "id", "split", "tags", "caption", "reference_caption", "duration", "sample_rate",
               "pair_id", "concept", "edit", "realised_tags", "realisation", "loudness_lufs", "bpm", "bpm_confidence",
               "key_estimate", "key_confidence", "provenance")
# Input spellings accepted for our fields when the user does not name the column.
TAG_COLUMNS = ("tags", "aspect_list", "aspects")
CAPTION_COLUMNS = ("caption", "text", "prediction")


def _doc(text: str, **kw: Any) -> Any:
    return field(metadata={"doc": text}, **kw)


@dataclass(kw_only=True)
class TagSetRow:
    """Hop 1, written by ``vae sample`` (or your own file): one tag set."""

    hop: ClassVar[str] = "tag set"
    id: str = _doc("unique within the file; rows without one get `row-<line>` (6 digits)")
    tags: list[str] = _doc("the whole set: taxonomy tags in taxonomy order, then any others")
    caption: str | None = _doc("a caption already in the input (fine-tuning pairs); optional", default=None)
    pair_id: str | None = _doc("counterfactual pairs: the pair both members share", default=None)
    concept: str | None = _doc("counterfactual pairs: the tag the members differ in", default=None)
    edit: str | None = _doc("counterfactual pairs: `base`, `add` or `remove`", default=None)
    provenance: dict[str, Any] = _doc("per stage (`tags`, `caption`, `audio`): model, revision, seed, settings",
                                      default_factory=dict)
    extra: dict[str, Any] = _doc("every other column of the input, carried unchanged", default_factory=dict)
    line: int = field(default=0, compare=False, metadata={"doc": None})

    def to_record(self, taxonomy: Categorizer | None = None) -> dict[str, Any]:
        """The JSON line: declared fields in the documented order (:data:`FIELD_ORDER`), the category
        lists after ``tags``, empty optional fields left out, then ``extra``."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", "line")}
        rec: dict[str, Any] = {}
        for name in FIELD_ORDER:
            value = values.get(name)
            if name == "tags":
                rec["tags"] = list(self.tags)
                if taxonomy is not None:
                    rec.update(taxonomy.by_category(self.tags))
            elif name in values and value is not None and value != {}:
                rec[name] = value
        for key, value in self.extra.items():
            rec.setdefault(key, value)
        return rec


@dataclass(kw_only=True)
class CaptionRow(TagSetRow):
    """Hop 2, written by ``caption infer``: a tag set with its caption."""

    hop: ClassVar[str] = "caption"
    caption: str = _doc("the description of the music (the text the audio is rendered from)")
    reference_caption: str | None = _doc("the input's own caption when the row was captioned again", default=None)
    duration: float | None = _doc("requested seconds of audio for this row; optional", default=None)


@dataclass(kw_only=True)
class ClipRow(CaptionRow):
    """Hop 3, written by ``tta generate`` (``DIR/metadata.jsonl``): a rendered clip."""

    hop: ClassVar[str] = "clip"
    file_name: str = _doc("the audio file, relative to the folder (`audio/<file-name-safe id>.wav`)")
    duration: float = _doc("seconds of audio in the file")
    sample_rate: int = _doc("Hz")
    realised_tags: list[str] | None = _doc("tags the audio was judged to carry (the pipeline's verify step)", default=None)
    realisation: float | None = _doc("realised / judged intended tags (verify step; null when none could be judged)",
                                     default=None)
    loudness_lufs: float | None = _doc(
        "integrated loudness of the file as written, in LUFS (ITU-R BS.1770-4, pyloudnorm; ungated for clips under "
        "0.4 s), whatever `generate.normalize` was; null for silence. How it was normalised: `provenance.audio.loudness`",
        default=None)
    bpm: float | None = _doc("tempo measured from the audio (verify step, every clip; the estimator in "
                             "`provenance.verify.facts_by`); null when no beat was found", default=None)
    bpm_confidence: float | None = _doc("periodicity of the onsets at `bpm`: 0 no pulse, 1 perfectly periodic",
                                        default=None)
    key_estimate: str | None = _doc("key estimated from the audio, e.g. `A minor` (verify step: chroma against "
                                    "Krumhansl-Schmuckler profiles); null when too ambiguous. Not `key`: a "
                                    "taxonomy may have a category of that name", default=None)
    key_confidence: float | None = _doc("correlation of the clip's pitch classes with the key's profile, 0 to 1",
                                        default=None)


@dataclass(kw_only=True)
class DatasetRow(ClipRow):
    """Hop 4, written by ``pipeline run`` (``DIR/dataset/<split>/metadata.parquet``)."""

    hop: ClassVar[str] = "dataset row"
    split: str = _doc("train, validation or test")


ROW_TYPES: tuple[type[TagSetRow], ...] = (TagSetRow, CaptionRow, ClipRow, DatasetRow)


def describe() -> str:
    """Markdown tables of every hop's fields (the body of docs/schema.md)."""
    out: list[str] = []
    seen: set[str] = set()
    for kind in ROW_TYPES:
        out += [f"### {kind.hop}: `{kind.__name__}`", "", (kind.__doc__ or "").strip(), "",
                "| field | type | meaning |", "|---|---|---|"]
        for f in fields(kind):
            doc = f.metadata.get("doc")
            if not doc or (f.name in seen and f.name not in ("caption", "duration")):
                continue
            seen.add(f.name)
            out.append(f"| `{f.name}` | `{_type_name(f.type)}` | {doc} |")
        out.append("")
    return "\n".join(out)


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace(" | None", ", optional").replace("|", "or")
