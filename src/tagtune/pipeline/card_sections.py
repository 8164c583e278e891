"""The card's prose sections a publisher would otherwise write by hand: intended use, bias, risks and
limitations, the report page, and the citations (BibTeX) of the dataset and of what made it.

Everything here is derived from the rows and the run's provenance, so the card says only what is
true of this dataset: MusicGen is cited when MusicGen rendered the audio, Llama 3 when a Llama 3.1
model wrote the captions, CLAP when a CLAP model judged the tags, MusicCaps when its data was an
input; ConceptCaps always, as the pipeline this one reproduces. tagtune's own parts (the template
captioner, the synth renderer, the tiny models) are tagtune's, cited through the dataset entry.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tagtune import __version__

CONCEPTCAPS = """@misc{sienkiewicz2026conceptcaps,
  title         = {{ConceptCaps} -- a Distilled Concept Dataset for Interpretability in Music Models},
  author        = {Sienkiewicz, Bruno and Neumann, {\\L}ukasz and Modrzejewski, Mateusz},
  year          = {2026},
  eprint        = {2601.14157},
  archivePrefix = {arXiv}
}"""
MUSICGEN = """@inproceedings{copet2023simple,
  title         = {Simple and Controllable Music Generation},
  author        = {Copet, Jade and Kreuk, Felix and Gat, Itai and Remez, Tal and Kant, David and Synnaeve, Gabriel
                   and Adi, Yossi and D{\\'e}fossez, Alexandre},
  booktitle     = {Advances in Neural Information Processing Systems (NeurIPS)},
  year          = {2023},
  eprint        = {2306.05284},
  archivePrefix = {arXiv}
}"""
LLAMA3 = """@misc{llama3herd2024,
  title         = {The {Llama} 3 Herd of Models},
  author        = {{Llama Team, AI @ Meta}},
  year          = {2024},
  eprint        = {2407.21783},
  archivePrefix = {arXiv}
}"""
CLAP = """@inproceedings{wu2023clap,
  title         = {Large-scale Contrastive Language-Audio Pretraining with Feature Fusion and Keyword-to-Caption
                   Augmentation},
  author        = {Wu, Yusong and Chen, Ke and Zhang, Tianyu and Hui, Yuchen and Berg-Kirkpatrick, Taylor
                   and Dubnov, Shlomo},
  booktitle     = {IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
  year          = {2023},
  eprint        = {2211.06687},
  archivePrefix = {arXiv}
}"""
MUSICCAPS = """@misc{agostinelli2023musiclm,
  title         = {{MusicLM}: Generating Music From Text},
  author        = {Agostinelli, Andrea and Denk, Timo I. and Borsos, Zal{\\'a}n and Engel, Jesse and Verzetti, Mauro
                   and Caillon, Antoine and Huang, Qingqing and Jansen, Aren and Roberts, Adam and Tagliasacchi, Marco
                   and Sharifi, Matt and Zeghidour, Neil and Frank, Christian},
  year          = {2023},
  eprint        = {2301.11325},
  archivePrefix = {arXiv},
  note          = {Introduces the MusicCaps dataset}
}"""


def pretty_name(dataset_cfg: Mapping[str, Any]) -> str:
    """``dataset.pretty_name``, else the name with its dashes and underscores as spaces."""
    name = dataset_cfg.get("pretty_name")
    return str(name) if name else re.sub(r"[-_]+", " ", str(dataset_cfg["name"])).strip()


def _models(rows: Sequence[Mapping[str, Any]], stage: str) -> set[str]:
    return {str((r.get("provenance") or {}).get(stage, {}).get("model") or "") for r in rows} - {""}


def _inputs(provenance: Mapping[str, Any]) -> list[str]:
    """Every input id and licence id the run recorded (lower case), to tell which works it used."""
    out = []
    for source in provenance.get("licences") or []:
        out += [str(source.get("id") or "").lower(), str(source.get("license") or "").lower()]
    return out + [str(v).lower() for v in (provenance.get("inputs") or {}).values()]


def dataset_entry(dataset_cfg: Mapping[str, Any], url: str | None) -> str:
    """The dataset's own BibTeX entry, from ``dataset.citation`` (author, year, url) and the names."""
    cite = dataset_cfg.get("citation") or {}
    title = pretty_name(dataset_cfg)
    year = str(cite.get("year") or time.strftime("%Y"))
    key = re.sub(r"[^a-z0-9]+", "_", str(dataset_cfg["name"]).lower()).strip("_") + year
    author = cite.get("author") or f"{dataset_cfg['name']} contributors"
    fields = [("title", f"{{{title}}}"), ("author", f"{{{author}}}"), ("year", year)]  # {{...}}: kept as written
    link = cite.get("url") or url
    if link:
        fields.append(("howpublished", f"\\url{{{link}}}"))
    fields.append(("note", f"Made with tagtune {__version__}"))
    body = ",\n".join(f"  {k:<13} = {{{v}}}" for k, v in fields)
    return f"@misc{{{key},\n{body}\n}}"


def citation(dataset_cfg: Mapping[str, Any], provenance: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
             url: str | None = None) -> str:
    """The Citation section: the dataset, then each work it was made with, with why it is cited."""
    inputs = _inputs(provenance)
    parts = [("this dataset", dataset_entry(dataset_cfg, url)),
             ("ConceptCaps, the pipeline this dataset's recipe follows (VAE tag sets, LLM captions, MusicGen audio)"
              + (", and the source of its tag data" if any("conceptcaps" in i for i in inputs) else ""), CONCEPTCAPS)]
    if any("musicgen" in m.lower() for m in _models(rows, "audio")):
        parts.append(("MusicGen, which rendered the audio", MUSICGEN))
    captioners = _models(rows, "caption")
    if any("llama-3" in m.lower() or "llama3" in m.lower() for m in captioners) or "llama3.1" in inputs:
        parts.append(("Llama 3, the model family that wrote the captions", LLAMA3))
    judges = (provenance.get("verification") or {}).get("judged_by") or {}
    if any("laion/" in str(j.get("model", "")).lower() for j in judges.values()):
        parts.append(("CLAP, which judged the tags heard in the audio", CLAP))
    if any("musiccaps" in i for i in inputs):
        parts.append(("MusicCaps, from which the tag data derives", MUSICCAPS))
    lines = ["If you use this dataset, please cite it and the works it was made with:", ""]
    for why, entry in parts:
        lines += [f"{why[0].upper()}{why[1:]}:", "", "```bibtex", entry, "```", ""]
    return "\n".join(lines).rstrip()


def intended_use() -> str:
    return "\n".join([
        "Made for research on music models, where every clip's concepts are known by construction:",
        "",
        "- **interpretability**: concept probing (TCAV-style concept sets, linear probes) of text-to-music and music "
        "understanding models; counterfactual pairs that differ in one tag;",
        "- **controllable generation**: conditioning on tags and captions, with the measured tempo, key and loudness "
        "of each clip as further controls;",
        "- **evaluation**: checking whether a model hears or renders a tag, against clips whose tags are recorded.",
        "",
        "Out of scope: standing in for human-made music or human judgement (the audio, captions and tags are "
        "machine-made), describing any real recording, artist or culture, and any use its licence does not allow "
        "(see Licences: a non-commercial input makes the whole dataset non-commercial).",
    ])


def limitations(rows: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any]) -> str:
    """Bias, risks and limitations, with this dataset's own figures where it has them."""
    audio = _models(rows, "audio")
    verified = [r for r in rows if (r.get("provenance") or {}).get("verify")]
    fractions = [float(r["realisation"]) for r in verified if isinstance(r.get("realisation"), (int, float))]
    lines = [
        "- **Machine-made labels.** Tags come from a generative model of tag sets, captions from a language model or "
        "a template, audio from a text-to-music model or a synthesiser. A tag says what the clip was *asked* to carry; "
        + (f"the verify step heard {sum(fractions) / len(fractions):.0%} of the judged tags on average "
           "(Quality), and tags no checker can judge are unverified." if fractions else
           "no verify step judged whether the audio carries it."),
        "- **Inherited bias.** The taxonomy and tag statistics follow their source data (MusicCaps-derived tags "
        "describe mostly Western popular music from YouTube); the audio model reproduces the styles of its training "
        "data and the caption model its phrasing. Genres, instruments and moods outside them are rare or absent.",
        "- **Measured facts are estimates.** `bpm` can be off by a factor of two (octave errors) on clips without a "
        "clear pulse (see `bpm_confidence`); `key` is a Krumhansl-Schmuckler estimate, often the relative or "
        "a neighbouring key on harmonically ambiguous music (see `key_confidence` and docs/benchmarks.md); "
        "`loudness_lufs` is a standard measurement (ITU-R BS.1770-4), not an estimate.",
    ]
    if any(m == "synth" for m in audio):
        lines.append("- **Synthesised audio.** The `synth` renderer plays only tempo and instrument tags, with simple "
                     "synthetic voices: it is a test bed with known truth, not realistic music.")
    if any(m == "tiny" or "tiny" in m for m in audio):
        lines.append("- **Tiny test models.** Random-weight models made this audio: it is noise, for exercising the code.")
    lines.append("- **Risks.** Generated music can resemble its training material; check before redistributing clips "
                 "on their own, and keep the attribution and licence terms (Licences, `NOTICE.md`).")
    return "\n".join(lines)


def report_link() -> str:
    return ("Before publishing, look and listen: `tagtune dataset report DIR -o DIR/dataset/report.html` writes "
            "[report.html](report.html) beside this card, one static page with the splits, tag counts and "
            "co-occurrence, how often each tag was heard, the loudness, BPM and key distributions, and a gallery of "
            "clips per concept with players (counterfactual pairs side by side). Its audio paths are relative: keep "
            "it in this folder, or add `--copy-audio` for a page that stands alone.")
