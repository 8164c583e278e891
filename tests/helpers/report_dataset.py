"""A small dataset folder in the pipeline's layout, written directly (no pipeline run), for the
tests of ``tagtune dataset report``: two splits, a counterfactual pair on ``harmonica``, a caption
that tries to inject a script, a clip whose file name needs URL quoting, absolute paths of this
machine in the provenance (which the page must not show), and optionally measured loudness/BPM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HOSTILE = '<script>alert("caption")</script> & <b>bold</b>'
TEMPO = {"slow tempo": 70.0, "medium tempo": 105.0, "fast tempo": 140.0}


def _tone(path: Path, freq: float, seconds: float = 0.5, rate: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype("float32"), rate, subtype="PCM_16")


def _rows(root: Path) -> list[dict[str, Any]]:
    """(split, id, tags, realised, caption, pair fields) of every row."""
    rows = []
    palette = [["rock", "electric guitar", "drums", "fast tempo"], ["jazz", "piano", "double bass", "slow tempo"],
               ["folk", "acoustic guitar", "harmonica", "medium tempo"], ["blues", "harmonica", "piano", "slow tempo"],
               ["rock", "drums", "harmonica", "fast tempo"], ["pop", "synthesizer", "drums", "medium tempo"]]
    for i in range(12):
        tags = palette[i % len(palette)]
        rows.append({"split": "train" if i < 8 else "test", "id": f"row-{i:02d}", "tags": tags,
                     "realised": [t for t in tags if t.endswith("tempo") and i != 4],  # row-04 misses its tempo
                     "caption": HOSTILE if i == 3 else f"A {tags[0]} piece with {', '.join(tags[1:])}."})
    rows[5]["id"] = "odd #5 100%"  # a file name that must be percent-encoded in a URL
    base = ["country", "acoustic guitar", "drums", "medium tempo"]
    for edit, tags in (("base", base), ("add", [*base[:2], "harmonica", *base[2:]])):
        rows.append({"split": "train", "id": f"pair-0001-{edit}", "tags": tags, "realised": ["medium tempo"],
                     "caption": f"A country piece{' with harmonica' if edit == 'add' else ''}.",
                     "pair_id": "pair-0001", "concept": "harmonica", "edit": edit})
    return rows


def make_dataset(root: Path, measures: bool = True, verified: bool = True) -> Path:
    """Write ``root/dataset`` and return it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tagtune.records.taxonomy import Taxonomy

    ds = root / "dataset"
    tax = Taxonomy.load("pkg:taxonomy.yaml")
    by_split: dict[str, list[dict[str, Any]]] = {}
    for k, r in enumerate(_rows(root)):
        name = f"audio/{r['id']}.wav"
        _tone(ds / r["split"] / name, 220.0 + 20 * k)
        tags = tax.sort(r["tags"])
        judged = [t for t in tags if t in tax.categories["tempo"]]
        prov: dict[str, Any] = {
            "tags": {"model": "vae", "fingerprint": "0123abcd", "seed": 42},
            "caption": {"model": "template", "revision": "tagtune:test", "seed": 1},
            "audio": {"model": str(root / "models" / "musicgen-local"), "revision": "r1", "seed": k},
            "verify": {"unjudged_tags": [t for t in tags if t not in judged], "missed_tags": []} if verified else None,
        }
        row = {"file_name": name, "id": r["id"], "tags": tags, **tax.by_category(tags), "caption": r["caption"],
               "duration": 0.5, "sample_rate": 16000, "realised_tags": r["realised"] if verified else None,
               "realisation": (len(r["realised"]) / len(judged) if judged else None) if verified else None,
               "pair_id": r.get("pair_id"), "concept": r.get("concept"), "edit": r.get("edit"), "provenance": prov}
        if measures:
            tempo = next((t for t in tags if t in TEMPO), None)
            row |= {"bpm": TEMPO.get(tempo, 120.0) + k, "bpm_confidence": 0.9, "loudness_lufs": -14.0 - k / 4,
                    "key_estimate": "A minor" if k % 2 else "C major"}
        by_split.setdefault(r["split"], []).append(row)
    for split, rows in by_split.items():
        pq.write_table(pa.Table.from_pylist(rows), ds / split / "metadata.parquet")
    provenance = {
        "tagtune_version": "test", "num_items": 14, "seed": 42,
        "started_from": {"tags": str(root / "my tags.jsonl")},
        "stages": {"tta": {"preset": "quick_test", "overrides": [f"data.taxonomy_path={root / 'taxonomy.yaml'}"]}},
        "licences": [{"role": "audio_model", "id": str(root / "models" / "musicgen-local"), "what": "",
                      "license": None, "license_name": "unknown", "obligations": []}],
        "declared_license": "cc-by-4.0", "inherited_license": "cc-by-4.0",
        "taxonomy": tax.to_dict(), "dataset": {"name": "report-test", "attribution": f"made in {root}"},
    }
    (ds / "provenance.json").write_text(json.dumps(provenance), encoding="utf-8")
    return ds
