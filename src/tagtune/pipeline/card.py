"""The dataset card (README.md) and its plots, generated from the rows and the run's provenance.

The YAML header is built with ``huggingface_hub.DatasetCardData`` (licence, pretty name, a valid
size bucket, ``configs`` with per-split ``data_files``, ``dataset_info`` with features and split
sizes, ``annotations_creators: machine-generated``, a ``synthetic`` tag, ``source_datasets``);
the body is the template ``resources/dataset_card.md`` filled with sections computed here:
statistics, caption tag coverage, the models with their revisions, seeds and settings, the
licence table with obligations, the plots, and (:mod:`tagtune.pipeline.card_sections`) intended use,
bias, risks and limitations, a link to the report page, and the citations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from tagtune.files.readers import resources_dir
from tagtune.files.resumable import atomic_write_text
from tagtune.pipeline import card_sections
from tagtune.pipeline.hf import arrow_schema, dataset_info, features, size_category, without_ffmpeg
from tagtune.records import licences, plots
from tagtune.records.taxonomy import Taxonomy


def write_plots(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, out_dir: Path, top: int = 30) -> list[Path]:
    """tag_frequency.png, category_sizes.png and set_size.png under ``out_dir``."""
    sets = {"dataset": plots.multi_hot(rows, taxonomy)}
    return [plots.tag_frequency_plot(out_dir / "tag_frequency.png", sets, taxonomy, top),
            plots.category_sizes_plot(out_dir / "category_sizes.png", sets, taxonomy),
            plots.set_size_plot(out_dir / "set_size.png", sets)]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(out)


def _statistics(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy) -> str:
    n = len(rows)
    durations = [float(r.get("duration") or 0) for r in rows]
    sizes = [len(r["tags"]) for r in rows]
    used = {t for r in rows for t in r["tags"]}
    lines = [f"- clips: {n}, {sum(durations) / 60:.1f} minutes of audio "
             f"(mean {sum(durations) / n:.2f} s, min {min(durations):.2f} s, max {max(durations):.2f} s)",
             f"- tags per clip: mean {sum(sizes) / n:.2f}, min {min(sizes)}, max {max(sizes)}",
             f"- distinct tags used: {len(used & set(taxonomy.tags))} of {len(taxonomy)}", *_measured(rows), ""]
    for cat in taxonomy.categories:
        with_cat = sum(1 for r in rows if r.get(cat))
        top = Counter(t for r in rows for t in (r.get(cat) or [])).most_common(10)
        lines += [f"**{cat}**: {with_cat} clips ({with_cat / n:.0%}) carry at least one tag.", ""]
        if top:
            lines += [_table(["tag", "clips", "share"], [[t, c, f"{c / n:.1%}"] for t, c in top]), ""]
    return "\n".join(lines)


def _measured(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line each for the loudness, tempo and key the rows carry (columns `loudness_lufs`, `bpm`, `key`)."""
    import statistics

    def values(key: str) -> list[float]:
        return sorted(float(r[key]) for r in rows if isinstance(r.get(key), (int, float)) and r[key] == r[key])

    lines = []
    lufs, bpm = values("loudness_lufs"), values("bpm")
    if lufs:
        lines.append(f"- integrated loudness (`loudness_lufs`, ITU-R BS.1770-4): median {statistics.median(lufs):.1f} "
                     f"LUFS, {lufs[0]:.1f} to {lufs[-1]:.1f} over {len(lufs)} clips")
    if bpm:
        lines.append(f"- measured tempo (`bpm`): median {statistics.median(bpm):.0f} BPM, {bpm[0]:.0f} to {bpm[-1]:.0f} "
                     f"over {len(bpm)} clips")
    keys = Counter(str(r["key_estimate"]) for r in rows if isinstance(r.get("key_estimate"), str))
    if keys:
        lines.append("- estimated key (`key`): " + ", ".join(f"{k} ({n})" for k, n in keys.most_common(5))
                     + f"; {sum(keys.values())} clips with a key")
    return lines


def _quality(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, verification: Mapping[str, Any] | None = None) -> str:
    from tagtune.caption.metrics import coverage

    cov = coverage([(r["tags"], r.get("caption") or "") for r in rows], taxonomy.category_of)
    lines = [f"Caption tag coverage (share of a clip's tags its caption mentions): mean {cov['mean']:.3f}, "
             f"{cov['full']:.1%} of captions mention every tag.", "",
             _table(["category", "coverage", "tags"], [[c, f"{v['coverage']:.3f}", v["tags"]]
                                                       for c, v in cov["per_category"].items()])]
    return "\n".join(lines + _realisation(rows, taxonomy, verification or {}) + _unrendered(rows))


def realisation_per_tag(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[int]]:
    """Per intended tag, ``[clips where a checker judged it, clips where it was heard]``.

    Only rows the verify step judged count, and a tag no checker could judge in a row is left out
    of that row (shared by the card and ``dataset report``, so both give the same rates)."""
    per_tag: dict[str, list[int]] = {}
    for r in rows:
        verify = (r.get("provenance") or {}).get("verify")
        if not verify:
            continue
        unjudged = set(verify.get("unjudged_tags") or [])
        realised = set(r.get("realised_tags") or [])
        for tag in r["tags"]:
            if tag not in unjudged:
                counts = per_tag.setdefault(tag, [0, 0])
                counts[0] += 1
                counts[1] += tag in realised
    return per_tag


def _realisation(rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, verification: Mapping[str, Any]) -> list[str]:
    """Tables of tag realisation in the audio (the verify step), per category and per tag."""
    verified = [r for r in rows if (r.get("provenance") or {}).get("verify")]
    if not verified:
        return ["", "Tag realisation in the audio was not verified (the pipeline's verify step did not run)."]
    per_tag = realisation_per_tag(verified)
    per_category: dict[str, list[int]] = {}
    for tag, (judged, realised) in per_tag.items():
        counts = per_category.setdefault(taxonomy.category_of.get(tag) or "other", [0, 0])
        counts[0] += judged
        counts[1] += realised
    fractions = [r["realisation"] for r in verified if r.get("realisation") is not None]
    mean = f"{sum(fractions) / len(fractions):.3f}" if fractions else "-"
    checks = ", ".join(f"{k}" for k in (verification.get("checkers") or [])) or "see provenance.json"
    lines = ["", "### Tag realisation in the audio", "",
             f"Each clip's tags were judged from its audio ({checks}; docs/verification.md). Mean realisation per clip "
             f"(tags judged present / tags judged): **{mean}** over {len(fractions)} clips; tags no checker can judge "
             "are left out.", ""]
    policy = verification.get("policy")
    if policy:
        lines += [f"Policy `{policy}` (minimum realisation {verification.get('min_realisation')}, at most "
                  f"{verification.get('max_attempts')} renders): {verification.get('rerendered', 0)} rows re-rendered "
                  f"({verification.get('improved', 0)} improved), {verification.get('dropped', 0)} dropped, "
                  f"{verification.get('below_minimum', 0)} below the minimum after the last attempt.", ""]
    lines += [_table(["category", "judged", "realised", "rate"],
                     [[c, j, k, f"{k / j:.3f}"] for c, (j, k) in sorted(per_category.items()) if j]), ""]
    lines += [_table(["tag", "category", "judged", "realised", "rate"],
                     [[t, taxonomy.category_of.get(t) or "other", j, k, f"{k / j:.3f}"]
                      for t, (j, k) in sorted(per_tag.items(), key=lambda kv: (kv[1][1] / kv[1][0], kv[0])) if j])]
    return lines


def _unrendered(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """What a renderer said it could not render (the synth lists it per clip)."""
    audio = [(r.get("provenance") or {}).get("audio") or {} for r in rows]
    if not any("unrendered_tags" in a for a in audio):
        return []
    missing = Counter(t for a in audio for t in a.get("unrendered_tags") or [])
    total = sum(len(r["tags"]) for r in rows)
    model = next((a.get("model") for a in audio if "unrendered_tags" in a), "the renderer")
    top = ", ".join(f"{t} ({c})" for t, c in missing.most_common(12))
    return ["", f"**Not in the audio:** `{model}` renders only the tags its tag map covers; {sum(missing.values())} of "
                f"{total} tag occurrences ({sum(missing.values()) / max(total, 1):.0%}) were not rendered"
                + (f", most often: {top}." if top else ".")]


def _made(provenance: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The models (with revisions) and settings, from the rows' own provenance."""
    stages = []
    for stage in ("tags", "caption", "audio"):
        entry = next((r["provenance"][stage] for r in rows if (r.get("provenance") or {}).get(stage)), None)
        if entry:
            settings = {k: v for k, v in entry.items() if k not in ("model", "revision", "fingerprint", "seed", "input_hash",
                                                                    "tagtune_version", "generation")}
            gen = entry.get("generation") or {}
            stages.append([stage, f"`{entry.get('model')}`", f"`{entry.get('revision') or entry.get('fingerprint')}`",
                           ", ".join(f"{k}={v}" for k, v in {**settings, **gen}.items() if not isinstance(v, (dict, list)))])
    lines = [_table(["stage", "model", "revision / fingerprint", "settings"], stages), "",
             f"Run seed {provenance.get('seed')}; every row records its own seeds under `provenance` (per stage).",
             "The composed config of every stage is saved next to its outputs (`<stage>/config.yaml`); "
             "`provenance.json` holds the run's presets, overrides, licences and exclusions."]
    return "\n".join(lines)


def _sources(provenance: Mapping[str, Any]) -> list[licences.Source]:
    return [licences.Source.from_dict(s) for s in provenance.get("licences", [])]


def _licences(dataset_cfg: Mapping[str, Any], provenance: Mapping[str, Any]) -> str:
    srcs = _sources(provenance)
    lines = [f"Declared licence of this dataset: **{dataset_cfg['license']}**. The inputs below require at least "
             f"**{provenance.get('inherited_license')}**.", "",
             _table(["input", "what", "licence"], [[f"{s.role}: `{s.display}`", s.what or "-",
                                                    s.licence.name if s.licence else licences.UNKNOWN] for s in srcs]), ""]
    obligations = licences.obligations(srcs)
    if obligations:
        lines += ["Obligations (also in `NOTICE.md`):", ""] + [f"- {o}" for o in obligations] + [""]
    attribution = dataset_cfg.get("attribution")
    lines += [f"Attribution: {attribution}" if attribution else "Attribution: credit the sources above.",
              "The audio, captions and tag sets are machine-generated."]
    return "\n".join(lines)


def card_data(rows: Sequence[Mapping[str, Any]], dataset_cfg: Mapping[str, Any], provenance: Mapping[str, Any],
              splits: Mapping[str, tuple[int, int]], config_paths: Mapping[str, list[str]]) -> Any:
    """The card's YAML header as ``DatasetCardData`` (shared with the Parquet export)."""
    from huggingface_hub import DatasetCardData

    sources = sorted({f"extended|{s.display}" for s in _sources(provenance)
                      if s.licence and "musiccaps" in s.identifier.lower()}) or ["original"]
    data = DatasetCardData(
        **licences.card_licence(dataset_cfg["license"]), pretty_name=card_sections.pretty_name(dataset_cfg),
        size_categories=[size_category(len(rows))], task_categories=["text-to-audio"], language=["en"],
        tags=["music", "synthetic", "concept-labelled", "tagtune"], annotations_creators=["machine-generated"],
        source_datasets=sources,
        configs=[{"config_name": "default", "data_files": [{"split": s, "path": p} for s, p in config_paths.items()]}],
    )
    dataset_info(data, features(arrow_schema(rows, drop=("file_name", "split", "_source"))), splits)
    return data


def write_card(out_dir: Path, rows: Sequence[Mapping[str, Any]], taxonomy: Taxonomy, dataset_cfg: Mapping[str, Any],
               provenance: Mapping[str, Any], plots: Sequence[Path], splits: Mapping[str, tuple[int, int]],
               config_paths: Mapping[str, list[str]] | None = None, load_path: str | None = None,
               embedded: bool = False) -> Path:
    """README.md: header from :func:`card_data`, body from the template (``resources/dataset_card.md``).

    Args:
        load_path: What ``load_dataset`` is given in the card (a Hub repo id); None: the folder,
            relative to the one that holds it (a card never names a path of this machine).
        embedded: The audio is embedded in Parquet rows (an export), not files beside the metadata.
    """
    config_paths = config_paths or {s: [f"{s}/**/*.wav", f"{s}/**/*.flac", f"{s}/metadata.parquet"] for s in splits}
    data = card_data(rows, dataset_cfg, provenance, splits, config_paths)
    n = len(rows)
    excluded = provenance.get("excluded") or {}
    uses_llama = any(s.licence and s.licence.id == "llama3.1" for s in _sources(provenance))
    body = Template((resources_dir() / "dataset_card.md").read_text(encoding="utf-8")).substitute(
        pretty_name=card_sections.pretty_name(dataset_cfg),
        summary=(f"A concept-labelled text-to-music dataset of **{n} clips**, made with tagtune: tag sets from "
                 f"a {len(taxonomy.categories)}-category taxonomy ({len(taxonomy)} tags), a caption for each tag set, "
                 "audio rendered from each caption. Every row records how it was made (`provenance`)."),
        built_with="**Built with Llama.**" if uses_llama else "",
        load_path=load_path or f"./{out_dir.name}", split_list=", ".join(splits),
        load_where="" if load_path else f"   # run from the folder that holds {out_dir.name}/",
        without_ffmpeg=without_ffmpeg(load_path or f"./{out_dir.name}", list(splits), embedded),
        files=_files(splits, plots, config_paths),
        splits=_table(["split", "clips", "share"], [[s, c, f"{c / n:.1%}"] for s, (c, _) in splits.items()]),
        split_seed=dataset_cfg["split_seed"],
        excluded=(f"\nLeakage guard: {excluded['dropped']} rows were dropped because their tag set or caption matched "
                  f"an evaluation set ({', '.join(excluded['files'])}): {excluded['tag_set']} by tag set, "
                  f"{excluded['caption_exact']} by exact caption, {excluded['caption_ngram']} by {excluded['ngram']}-gram "
                  f"overlap >= {excluded['threshold']}.") if excluded else "",
        statistics=_statistics(rows, taxonomy), quality=_quality(rows, taxonomy, provenance.get("verification")), made=_made(provenance, rows),
        licences=_licences(dataset_cfg, provenance), report=card_sections.report_link(),
        intended_use=card_sections.intended_use(), limitations=card_sections.limitations(rows, provenance),
        citation=card_sections.citation(dataset_cfg, provenance, rows,
                                        f"https://huggingface.co/datasets/{load_path}" if load_path else None),
        plots="\n\n".join(f"![{p.stem.replace('_', ' ')}](plots/{p.name})" for p in plots),
    )
    return atomic_write_text(out_dir / "README.md", f"---\n{data.to_yaml()}\n---\n\n{body}")


def _files(splits: Mapping[str, Any], plots: Sequence[Path], config_paths: Mapping[str, list[str]]) -> str:
    parts = [f"- `{', '.join(paths)}`: the {s} split" for s, paths in config_paths.items()]
    parts += ["- `plots/`: " + ", ".join(f"`{p.name}`" for p in plots),
              "- `provenance.json`: models with revisions, seeds, settings, licences, exclusions",
              "- `NOTICE.md`: licence notices and obligations of the inputs"]
    return "\n".join(parts)
