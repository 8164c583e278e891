"""The HTML sections of ``tagtune dataset report``, each a string filled into ``resources/report.html``.

Every value that comes from the dataset (captions, tags, ids, model names, overrides) goes through
:func:`esc`; only the markup built here is trusted (:class:`Html`). Provenance text is passed
through :func:`~tagtune.pipeline.report_data.public` first, so the page names no local path.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from tagtune.pipeline.card import realisation_per_tag
from tagtune.pipeline.report_data import Clip, Concept, ReportData, public
from tagtune.records import licences


class Html(str):
    """Markup built by this module (not escaped again)."""


def esc(value: Any) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> Html:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Html(f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def bar(share: float, label: str, kind: str = "") -> Html:
    """A horizontal bar for a share in [0, 1] and its label (plain CSS: no script, no image)."""
    pct = max(0.0, min(1.0, share)) * 100
    return Html(f'<span class="barcell"><span class="bar {esc(kind)}"><span style="width:{pct:.1f}%"></span></span>'
                f"{esc(label)}</span>")


def tag_link(tag: str, clips: int) -> Html:
    """A tag linking to its gallery section (a tag no clip carries has none)."""
    return Html(f'<a href="#{esc(slug(tag))}">{esc(tag)}</a>' if clips else f'<span class="muted">{esc(tag)}</span>')


def slug(tag: str) -> str:
    return "c-" + "".join(ch if ch.isalnum() else "-" for ch in tag.lower())


def _minutes(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def header(data: ReportData) -> Html:
    """The page's headline figures."""
    clips = data.clips
    seconds = sum(c.duration or 0 for c in clips)
    used = {t for c in clips for t in c.tags} & set(data.taxonomy.tags)
    cards = [(len(clips), "clips"), (_minutes(seconds), "of audio"),
             (len({c.split for c in clips}), "splits"), (f"{len(used)} / {len(data.taxonomy)}", "tags used"),
             (len(data.taxonomy.categories), "categories")]
    fractions = [c.realisation for c in clips if c.realisation is not None]
    if fractions:
        cards.append((f"{sum(fractions) / len(fractions):.2f}", "mean realisation"))
    return Html("".join(f'<div class="stat"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for v, k in cards))


def summary(data: ReportData) -> Html:
    """Splits, licences, the models that made the clips, and how the run was set up."""
    prov = data.provenance
    total = len(data.clips)
    splits: dict[str, list[float]] = {}
    for c in data.clips:
        entry = splits.setdefault(c.split, [0, 0.0])
        entry[0] += 1
        entry[1] += c.duration or 0
    split_rows = [[s, n, _minutes(sec), bar(n / total, f"{n / total:.0%}")] for s, (n, sec) in splits.items()]
    models = table(["stage", "model", "revision / fingerprint", "clips"], data.models) if data.models else \
        Html("<p class=muted>The rows record no models.</p>")
    return Html(f'<div class="grid2"><div><h3>Splits</h3>{table(["split", "clips", "audio", "share"], split_rows)}'
                f'<h3>Models</h3>{models}</div><div>{_licences(prov)}</div></div>'
                f"<h3>How it was made</h3>{_made(prov)}")


def _licences(prov: Mapping[str, Any]) -> Html:
    declared, inherited = prov.get("declared_license"), prov.get("inherited_license")
    if not declared and not prov.get("licences"):
        return Html("<h3>Licence</h3><p class=muted>provenance.json records no licences.</p>")
    srcs = [licences.Source.from_dict(s) for s in prov.get("licences") or []]
    out = [f"<h3>Licence</h3><p>Declared: <b>{esc(declared or 'not declared')}</b>; the inputs require at least "
           f"<b>{esc(inherited or 'unknown')}</b>.</p>"]
    conflicts = licences.conflicts(str(declared), srcs) if declared else []
    if conflicts:
        out.append(f'<p class="warn">The declared licence is less restrictive than an input\'s: {esc(conflicts[0])}</p>')
    out.append(table(["input", "id", "licence"], [[s.role, public(s.display), s.licence.name if s.licence
                                                   else licences.UNKNOWN] for s in srcs]))
    obligations = licences.obligations(srcs)
    if obligations:
        out.append("<ul>" + "".join(f"<li>{esc(o)}</li>" for o in obligations) + "</ul>")
    return Html("".join(out))


def _made(prov: Mapping[str, Any]) -> Html:
    """The run's settings as provenance.json records them (stages, presets, overrides, policy)."""
    if not prov:
        return Html("<p class=muted>No provenance.json: how the dataset was made is not recorded.</p>")
    items = [f"tagtune {esc(prov.get('tagtune_version', '?'))}, run seed {esc(prov.get('seed'))}, "
             f"{esc(prov.get('num_items'))} items requested."]
    for name, stage in (prov.get("stages") or {}).items():
        if isinstance(stage, Mapping):
            overrides = ", ".join(public(o) for o in stage.get("overrides") or []) or "none"
            items.append(f"<b>{esc(name)}</b>: preset {esc(stage.get('preset') or 'default')}; "
                         f"overrides <code>{esc(overrides)}</code>")
    for role, value in (prov.get("started_from") or {}).items():
        items.append(f"started from {esc(role)}: <code>{esc(public(value))}</code>")
    ver = prov.get("verification") or {}
    if ver:
        items.append(f"verify: policy <b>{esc(ver.get('policy'))}</b> ({esc(', '.join(ver.get('checkers') or []))}), "
                     f"minimum realisation {esc(ver.get('min_realisation'))}; {esc(ver.get('rerendered', 0))} rows "
                     f"re-rendered ({esc(ver.get('improved', 0))} improved), {esc(ver.get('dropped', 0))} dropped.")
    excluded = prov.get("excluded") or {}
    if excluded:
        items.append(f"leakage guard: {esc(excluded.get('dropped'))} rows dropped as matching an evaluation set.")
    attribution = (prov.get("dataset") or {}).get("attribution")
    if attribution:
        items.append(f"attribution: {esc(public(attribution))}")
    return Html("<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>")


def tag_counts(data: ReportData) -> Html:
    """One card per category: clips carrying any of its tags, and each tag's count and share."""
    counts = Counter(t for c in data.clips for t in c.tags)
    total = len(data.clips)
    top = max(counts.values(), default=1)
    cards = []
    for cat, tags in data.taxonomy.categories.items():
        members = set(tags)
        with_cat = sum(1 for c in data.clips if not members.isdisjoint(c.tags))
        rows = [[tag_link(t, counts[t]), counts[t], bar(counts[t] / top, f"{counts[t] / total:.1%}")] for t in tags]
        cards.append(f'<div class="card"><h3>{esc(cat)} <small>{with_cat} clips ({with_cat / total:.0%})</small></h3>'
                     f'{table(["tag", "clips", "share of clips"], rows, "compact")}</div>')
    others = Counter({t: n for t, n in counts.items() if t not in data.taxonomy.index})
    if others:
        listed = ", ".join(f"{t} ({n})" for t, n in others.most_common(20))
        cards.append(f'<div class="card"><h3>outside the taxonomy</h3><p>{esc(listed)}</p></div>')
    return Html(f'<div class="cards">{"".join(cards)}</div>')


def realisation(data: ReportData) -> Html:
    """How often the verify step heard each intended tag, per category and per tag (worst first)."""
    per_tag = realisation_per_tag([c.as_row() for c in data.clips])
    if not any(c.realised is not None for c in data.clips):
        return Html("<p class=muted>Not verified: the pipeline's verify step did not run, so no row records which "
                    "of its tags were heard.</p>")
    cat_of = data.taxonomy.category_of
    per_cat: dict[str, list[int]] = {}
    for tag, (judged, heard) in per_tag.items():
        entry = per_cat.setdefault(cat_of.get(tag, "other"), [0, 0])
        entry[0] += judged
        entry[1] += heard
    counts = Counter(t for c in data.clips for t in c.tags)
    cat_rows = [[cat, j, k, bar(k / j, f"{k / j:.0%}", "rate")] for cat, (j, k) in per_cat.items() if j]
    judged_cats = set(per_cat)
    unjudged = [c for c in data.taxonomy.categories if c not in judged_cats]
    tag_rows = [[tag_link(t, counts[t]), cat_of.get(t, "other"), counts[t], j, k, bar(k / j, f"{k / j:.0%}", "rate")]
                for t, (j, k) in sorted(per_tag.items(), key=lambda kv: (kv[1][1] / kv[1][0], kv[0])) if j]
    fractions = [c.realisation for c in data.clips if c.realisation is not None]
    missed = sum(1 for c in data.clips if any(c.verdict(t) == "missed" for t in c.tags))
    lead = (f"<p>Mean realisation per clip <b>{sum(fractions) / len(fractions):.3f}</b> over {len(fractions)} clips; "
            f"<b>{missed}</b> clips missed at least one judged tag.</p>") if fractions else ""
    note = (f"<p class=muted>No checker judges {esc(', '.join(unjudged))}: those tags are not in the audio checks "
            "(they may still be in the audio).</p>") if unjudged else ""
    return Html(f'{lead}<div class="grid2"><div><h3>Per category</h3>{table(["category", "judged", "heard", "rate"], cat_rows)}'
                f"{note}</div><div><h3>Per tag, worst first</h3>"
                f'{table(["tag", "category", "clips", "judged", "heard", "rate"], tag_rows, "compact")}</div></div>')


def measured(data: ReportData, figure: Callable[[str, Mapping[str, list[float]], str, str], Html]) -> Html:
    """Loudness, BPM (per tempo tag) and key when the rows carry them; otherwise says "not measured"."""
    parts = []
    lufs = [float(c.measures["loudness_lufs"]) for c in data.clips if "loudness_lufs" in c.measures]
    parts.append(f"<h3>Loudness</h3>{figure('loudness', {'all clips': lufs}, 'integrated loudness (LUFS)', 'loudness')}"
                 if lufs else "<h3>Loudness</h3><p class=muted>Loudness: not measured (no row has loudness_lufs).</p>")
    parts.append(_tempo(data, figure))
    keys = Counter(str(c.measures["key_estimate"]) for c in data.clips if "key_estimate" in c.measures)
    parts.append(f"<h3>Key</h3>{table(['key', 'clips'], keys.most_common(24), 'compact')}" if keys
                 else "<h3>Key</h3><p class=muted>Key: not measured (no row has key).</p>")
    return Html(f'<div class="grid3">{"".join(f"<div>{p}</div>" for p in parts)}</div>')


def _tempo(data: ReportData, figure: Callable[[str, Mapping[str, list[float]], str, str], Html]) -> str:
    measured_clips = [c for c in data.clips if "bpm" in c.measures]
    if not measured_clips:
        return "<h3>Tempo</h3><p class=muted>Tempo (BPM): not measured (no row has bpm).</p>"
    tempo_tags = data.taxonomy.categories.get("tempo", [])
    series = {t: [float(c.measures["bpm"]) for c in measured_clips if t in c.tags] for t in tempo_tags}
    series = {t: v for t, v in series.items() if v} or {"all clips": [float(c.measures["bpm"]) for c in measured_clips]}
    conf = sorted(float(c.measures["bpm_confidence"]) for c in measured_clips if "bpm_confidence" in c.measures)
    rows = [[t, len(v), f"{_quantile(v, 0.5):.0f}", f"{_quantile(v, 0.1):.0f} - {_quantile(v, 0.9):.0f}"]
            for t, v in series.items()]
    note = f"<p class=muted>median beat-tracking confidence {_quantile(conf, 0.5):.2f}</p>" if conf else ""
    return (f"<h3>Tempo</h3>{figure('bpm', series, 'tempo (BPM)', 'measured tempo per tempo tag')}"
            f"{table(['tag', 'clips', 'median BPM', '10-90%'], rows, 'compact')}{note}")


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def filters(data: ReportData) -> Html:
    """The gallery's category buttons (the inline script reads ``data-filter``)."""
    buttons = ['<button type="button" data-filter="all" class="on">all</button>']
    buttons += [f'<button type="button" data-filter="{esc(c)}">{esc(c)}</button>' for c in data.taxonomy.categories]
    return Html("".join(buttons))


def gallery(concepts: Sequence[Concept], src: Callable[[Clip], str]) -> Html:
    """Per category, per tag: its pairs side by side, then single clips, each with a player."""
    by_cat: dict[str, list[Concept]] = {}
    for c in concepts:
        by_cat.setdefault(c.category, []).append(c)
    out = []
    for cat, group in by_cat.items():
        out.append(f'<section class="category" data-category="{esc(cat)}"><h3>{esc(cat)}</h3>'
                   + "".join(_concept(c, src) for c in group) + "</section>")
    return Html("".join(out))


def _concept(concept: Concept, src: Callable[[Clip], str]) -> str:
    tag = concept.tag
    shown = concept.shown
    missed = sum(1 for c in shown if tag in c.tags and c.verdict(tag) == "missed")
    stat = f"{concept.count} clips in the dataset; {len(shown)} shown"
    if concept.pairs:
        stat += f", {len(concept.pairs)} counterfactual pair{'s' if len(concept.pairs) > 1 else ''}"
    body = "".join(_pair(tag, a, b, src) for a, b in concept.pairs) + "".join(_clip(c, tag, src) for c in concept.singles)
    return (f'<section class="concept" id="{esc(slug(tag))}" data-category="{esc(concept.category)}" '
            f'data-tag="{esc(tag.lower())}" data-missed="{int(missed > 0)}"><header><h4>{esc(tag)}</h4>'
            f'<span class="muted">{esc(stat)}</span></header><div class="clips">{body}</div></section>')


def _pair(tag: str, with_tag: Clip, without: Clip, src: Callable[[Clip], str]) -> str:
    return (f'<div class="pair"><div class="pair-head">counterfactual pair <code>{esc(with_tag.pair_id)}</code>: '
            f"the tag sets differ only in <b>{esc(tag)}</b></div><div class=\"pair-members\">"
            f"{_clip(with_tag, tag, src, f'with {tag}')}{_clip(without, tag, src, f'without {tag}', absent=True)}"
            "</div></div>")


_VERDICT = {"heard": ("ok", "heard in the audio"), "missed": ("miss", "not heard in the audio"),
            "unjudged": ("nj", "no checker judges this tag")}


def _clip(clip: Clip, tag: str, src: Callable[[Clip], str], label: str = "", absent: bool = False) -> str:
    """One clip's card; ``absent``: the pair member without ``tag``, which is shown struck out."""
    chips = []
    for t in clip.tags:
        cls, title = _VERDICT[clip.verdict(t)]
        chips.append(f'<li class="{cls}{" focus" if t == tag else ""}" title="{esc(title)}">{esc(t)}</li>')
    if absent:
        chips.append(f'<li class="absent" title="left out: the only difference from its partner">{esc(tag)}</li>')
    facts = [clip.id, clip.split] + ([f"{clip.duration:.1f} s"] if clip.duration else [])
    m = clip.measures
    facts += [f"{float(m['bpm']):.0f} BPM"] if "bpm" in m else []
    facts += [f"{float(m['loudness_lufs']):.1f} LUFS"] if "loudness_lufs" in m else []
    facts += [str(m["key_estimate"])] if "key_estimate" in m else []
    edit = f'<div class="edit">{esc(label)} <small>({esc(clip.edit)})</small></div>' if label else ""
    return (f'<figure class="clip">{edit}<audio controls preload="metadata" src="{esc(src(clip))}"></audio>'
            f"<figcaption>{esc(clip.caption)}</figcaption><ul class=\"chips\">{''.join(chips)}</ul>"
            f'<p class="facts">{esc(" · ".join(facts))}</p></figure>')
