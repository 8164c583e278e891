"""Checkers for ``tagtune tta verify``: judge from a clip's audio whether its intended tags are there.

Every intended tag goes to the first checker in ``verification.checkers`` that *claims* it; a tag
no checker claims is *unjudged* (reported, and left out of the realisation fraction, since
nothing measured it). Built in:

* ``tempo``: a librosa tempo estimate of the clip (see :mod:`tagtune.tta.tempo`) against the BPM
  range the ``tagmap`` declares for the tag. Claims exactly the tags with a range.
* ``clap``: CLAP zero-shot. The tag, in its category's prompt template, is embedded beside every
  other tag of the category (the candidates); the clip's audio embedding ranks them. A tag is
  realised when it ranks high enough (``rank``), stands out from the category's other tags by a
  margin (``margin``), or clears a calibrated cosine (``threshold``). Claims the tags of its
  categories (all of them by default). Audio embeddings are cached by file content.

``verification.checkers`` names members of :data:`CHECKERS`: these built-ins, a
``package.module:Class`` or an entry point of the ``tagtune.checkers`` group (:mod:`tagtune.plugins`).
Your own checker (an auto-tagger, a key detector) follows the :class:`Checker` Protocol.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tagtune.errors import ConfigError
from tagtune.files.resumable import atomic_path
from tagtune.plugins import Family, load
from tagtune.report import SILENT, Reporter
from tagtune.tta.clap import ClapEmbedder
from tagtune.tta.config import ClapSettings, TempoSettings, VerificationSettings, VerifyConfig


@dataclass(frozen=True)
class Clip:
    """One clip as the checkers see it: mono float32 audio and the sha256 of its file."""

    id: str
    audio: Any
    sample_rate: int
    digest: str


@dataclass(frozen=True)
class TagToJudge:
    """An intended tag and its category (None when no taxonomy or row column names one)."""

    tag: str
    category: str | None


@dataclass
class Judgement:
    """A checker's verdict on one tag of one clip: realised or not, a score, and what it measured."""

    realised: bool
    score: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckerContext:
    """What a checker may need: the command's config, the folder, every category's candidate tags."""

    cfg: VerifyConfig
    folder: Path
    candidates: Mapping[str, Sequence[str]]
    reporter: Reporter = SILENT


class Checker(Protocol):
    """Judges from a clip's audio whether the tags it claims are there.

    Members are classes built as ``Member(settings, context)``: ``settings`` is the checker's own
    section of ``verification`` for the built-ins (``verification.tempo``, ``verification.clap``)
    and ``verification.custom.<name>`` (a dict; ``<name>`` the class name of a ``module:Class``) for
    any other; ``context`` a :class:`CheckerContext`. ``name`` keys its verdicts and its line in
    the report; an optional ``describe()`` returns its settings for the report.
    """

    name: str

    def claims(self, tag: str, category: str | None) -> bool:
        """Whether this checker judges ``tag`` (of ``category``, None when unknown)."""
        ...

    def judge(self, clips: list[Clip], tags: list[list[TagToJudge]]) -> list[dict[str, Judgement]]:
        """For each clip, a verdict per tag asked of it (a tag left out counts as unjudged)."""
        ...


class TempoChecker:
    """Measured BPM inside the tag's range (``tagmap.tempo_bpm``, widened by ``tolerance``)."""

    name = "tempo"
    requires = ("librosa",)

    def __init__(self, settings: TempoSettings, context: CheckerContext):
        self.ranges = {str(t): (float(r[0]), float(r[1])) for t, r in context.cfg.tagmap.tempo_bpm.items()}
        self.method, self.tolerance = settings.method, settings.tolerance
        self.min_confidence = settings.min_confidence

    def claims(self, tag: str, category: str | None) -> bool:
        return tag in self.ranges

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "tolerance": self.tolerance, "min_confidence": self.min_confidence,
                "ranges": {t: list(r) for t, r in self.ranges.items()}}

    def judge(self, clips: list[Clip], tags: list[list[TagToJudge]]) -> list[dict[str, Judgement]]:
        from tagtune.tta.tempo import estimate_bpm, judge

        out: list[dict[str, Judgement]] = []
        for clip, wanted in zip(clips, tags, strict=True):
            if not wanted:
                out.append({})
                continue
            bpm, confidence = estimate_bpm(clip.audio, clip.sample_rate, self.method)
            soft = judge(bpm, self.ranges, self.tolerance)
            verdicts = {}
            for t in wanted:
                lo, hi = self.ranges[t.tag]
                inside = lo / (1 + self.tolerance) <= bpm <= hi * (1 + self.tolerance)
                verdicts[t.tag] = Judgement(inside and confidence >= self.min_confidence, soft.get(t.tag, 0.0),
                                            {"bpm": bpm, "confidence": confidence, "range": [lo, hi]})
            out.append(verdicts)
        return out


class ClapChecker:
    """CLAP zero-shot against the other tags of the category (the same pinned model as ``tta evaluate``)."""

    name = "clap"

    def __init__(self, settings: ClapSettings, context: CheckerContext):
        self.settings, self.context = settings, context
        self.categories = None if settings.categories is None else set(settings.categories)
        self.templates = dict(settings.templates)
        self._embedder: Any = None
        self._text: dict[str, tuple[list[str], Any]] = {}
        cache_root = context.folder / ".tagtune-cache"
        name = context.cfg.evaluate.clap_model
        slug = hashlib.sha256(f"{name}@{context.cfg.evaluate.revision}{_dtype_tag(context)}".encode()).hexdigest()[:12]
        self.cache_dir = cache_root / f"clap-{slug}" if settings.cache else None

    def claims(self, tag: str, category: str | None) -> bool:
        if category is None or len(self.context.candidates.get(category, ())) < 2:
            return False  # nothing to rank the tag against
        return self.categories is None or category in self.categories

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"model": self.context.cfg.evaluate.clap_model, "revision": self.embedder.revision,
                "dtype": str(self.embedder.dtype).removeprefix("torch."),
                "decision": s.decision, "top_k": s.top_k, "margin": s.margin,
                "threshold": s.threshold, "templates": self.templates,
                "categories": sorted(self.categories) if self.categories is not None else None}

    @property
    def embedder(self) -> Any:
        if self._embedder is None:  # loaded on first use: a run where CLAP claims nothing never loads it
            self._embedder = ClapEmbedder(self.context.cfg.evaluate, self.context.cfg.device)
        return self._embedder

    def template(self, category: str) -> str:
        return self.templates.get(category, self.templates.get("default", "{tag}"))

    def text_embeddings(self, category: str) -> tuple[list[str], Any]:
        """The category's candidate tags and their templated text embeddings (computed once)."""
        if category not in self._text:
            tags = list(self.context.candidates[category])
            texts = [self.template(category).format(tag=t, category=category) for t in tags]
            self._text[category] = (tags, self.embedder.embed_texts(texts))
        return self._text[category]

    def audio_embeddings(self, clips: list[Clip]) -> Any:
        """One embedding per clip, from the cache when this file was embedded before."""
        import numpy as np

        found: dict[int, Any] = {}
        if self.cache_dir is not None:
            for i, clip in enumerate(clips):
                path = self.cache_dir / f"{clip.digest}.npy"
                if path.is_file():
                    try:
                        found[i] = np.load(path, allow_pickle=False)
                    except (OSError, ValueError):
                        path.unlink(missing_ok=True)  # torn or foreign: embed again
        todo = [i for i in range(len(clips)) if i not in found]
        if todo:
            fresh = self.embedder.embed_audio([(clips[i].audio, clips[i].sample_rate) for i in todo])
            for i, emb in zip(todo, fresh, strict=True):
                found[i] = emb
                if self.cache_dir is not None:
                    with atomic_path(self.cache_dir / f"{clips[i].digest}.npy") as tmp, open(tmp, "wb") as fh:
                        np.save(fh, emb, allow_pickle=False)
        return np.stack([found[i] for i in range(len(clips))])

    def judge(self, clips: list[Clip], tags: list[list[TagToJudge]]) -> list[dict[str, Judgement]]:
        busy = [i for i, wanted in enumerate(tags) if wanted]
        out: list[dict[str, Judgement]] = [{} for _ in clips]
        if not busy:
            return out
        audio = self.audio_embeddings([clips[i] for i in busy])
        for row, i in enumerate(busy):
            by_category: dict[str, list[str]] = {}
            for t in tags[i]:
                by_category.setdefault(str(t.category), []).append(t.tag)
            for category, wanted in by_category.items():
                candidates, text = self.text_embeddings(category)
                out[i].update(decide(audio[row] @ text.T, candidates, wanted, self.settings))
        return out


def _dtype_tag(context: CheckerContext) -> str:
    """What the embedding cache adds to its key for a model run in half precision (float32: nothing, so
    caches written before ``evaluate.dtype`` existed stay valid)."""
    from tagtune.models.device import pick_device
    from tagtune.tta.clap import clap_dtype

    try:
        dtype = str(clap_dtype(context.cfg.evaluate.dtype, pick_device(context.cfg.device)))
    except Exception:  # noqa: BLE001 -- a device that is not there fails later, when the model loads, with its own message
        return ""
    return "" if dtype == "torch.float32" else f"#{dtype}"


def decide(cosines: Any, candidates: list[str], wanted: list[str], settings: ClapSettings) -> dict[str, Judgement]:
    """The CLAP decision for the intended tags of one category, from the clip's cosine to every candidate.

    ``rank``: realised when the tag is among the top ``len(wanted) + top_k - 1`` candidates.
    ``margin``: realised when its cosine exceeds the mean cosine of the non-intended candidates by
    ``margin``. ``threshold``: realised when its cosine is at least ``threshold``.
    """
    import numpy as np

    sims = np.asarray(cosines, dtype=np.float64)
    index = {t: i for i, t in enumerate(candidates)}
    others = [i for t, i in index.items() if t not in set(wanted)]
    baseline = float(sims[others].mean()) if others else 0.0
    allowed = len(wanted) + settings.top_k - 1
    verdicts = {}
    for tag in wanted:
        if tag not in index:
            continue
        cos = float(sims[index[tag]])
        rank = 1 + int(np.sum(sims > cos))
        margin = cos - baseline
        realised = {"rank": rank <= allowed, "margin": margin >= settings.margin,
                    "threshold": cos >= settings.threshold}[settings.decision]
        verdicts[tag] = Judgement(realised, round(cos, 6), {"rank": rank, "of": len(candidates), "margin": round(margin, 6)})
    return verdicts


CHECKERS = Family(
    name="checkers",
    what="checker",
    protocol=Checker,
    builtins={"tempo": "tagtune.tta.checkers:TempoChecker", "clap": "tagtune.tta.checkers:ClapChecker"},
    key="verification.checkers",
)


def checker_classes(verification: VerificationSettings) -> list[tuple[str, type[Checker]]]:
    """``(name, class)`` of every checker ``verification.checkers`` names, imported and their packages
    checked (before any clip is read)."""
    return [(name, load(CHECKERS, name)) for name in verification.checkers]


def _settings(verification: VerificationSettings, name: str, cls: type) -> Any:
    """A checker's settings: a built-in's own section of ``verification`` (``tempo``, ``clap``, however it
    was named), any other's ``verification.custom.<name>`` (``<name>`` the class name of a
    ``module:Class``), even when its name is also a section's (a third-party ``key`` checker does not
    get ``verification.key``, the key estimate's settings)."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    section = next((key for key, target in CHECKERS.builtins.items() if target == path), None)
    if section is not None:
        return getattr(verification, section)
    short = name.rpartition(":")[2]
    return dict(verification.custom.get(short) or verification.custom.get(name) or {})


def load_checkers(verification: VerificationSettings, context: CheckerContext,
                  classes: list[tuple[str, type[Checker]]] | None = None) -> list[Checker]:
    """The checkers of ``verification.checkers``, built, in order of precedence."""
    classes = classes if classes is not None else checker_classes(verification)
    checkers = [cls(_settings(verification, name, cls), context) for name, cls in classes]
    if len({c.name for c in checkers}) != len(checkers):
        raise ConfigError("two checkers share a name", key="verification.checkers")
    return checkers
