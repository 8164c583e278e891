"""Regenerate tagtune's packaged demo dataset (src/tagtune/resources/demo_tags.jsonl).

The demo data is ours: tag sets drawn from hand-written music "styles" over the default
taxonomy, so tags co-occur the way they do in real music (metal with distorted guitar and an
aggressive mood, ambient with synthesizer and a calm one), each with a short templated caption
that mentions its tags. It is deterministic: the same seed writes the same bytes.

    python scripts/make_demo_data.py            # rewrites the packaged file
    python scripts/make_demo_data.py --check    # exits 1 if the packaged file is out of date
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tagtune" / "resources" / "demo_tags.jsonl"
N_SETS = 400
SEED = 1234

# Each style: (weight, genres {tag: p}, moods {tag: p}, instruments {tag: p}, tempos {tag: p}).
# One genre is always drawn from the first entry's group; the others are added with their p.
STYLES: dict[str, tuple[float, dict, dict, dict, dict]] = {
    "metal": (1.0, {"metal": 1.0, "rock": 0.3, "punk": 0.1},
              {"aggressive": 0.85, "energetic": 0.7, "dark": 0.5, "epic": 0.2, "tense": 0.2},
              {"distorted guitar": 0.95, "electric guitar": 0.5, "bass guitar": 0.7, "drums": 0.9, "male vocals": 0.6},
              {"fast tempo": 0.6, "very fast tempo": 0.35, "medium tempo": 0.1}),
    "punk": (0.6, {"punk": 1.0, "rock": 0.5},
             {"energetic": 0.9, "aggressive": 0.6, "playful": 0.3, "happy": 0.2},
             {"distorted guitar": 0.8, "electric guitar": 0.6, "bass guitar": 0.7, "drums": 0.95, "male vocals": 0.7},
             {"fast tempo": 0.6, "very fast tempo": 0.4}),
    "rock": (1.2, {"rock": 1.0, "blues": 0.15, "pop": 0.15},
             {"energetic": 0.6, "uplifting": 0.3, "happy": 0.2, "melancholic": 0.15, "groovy": 0.2},
             {"electric guitar": 0.9, "distorted guitar": 0.3, "bass guitar": 0.8, "drums": 0.9, "male vocals": 0.5, "female vocals": 0.2, "piano": 0.15},
             {"medium tempo": 0.5, "fast tempo": 0.4, "steady beat": 0.3}),
    "pop": (1.2, {"pop": 1.0, "electronic": 0.25, "rock": 0.1},
            {"happy": 0.6, "uplifting": 0.5, "romantic": 0.25, "playful": 0.3, "energetic": 0.3},
            {"female vocals": 0.6, "male vocals": 0.35, "synthesizer": 0.5, "drum machine": 0.4, "drums": 0.3, "piano": 0.3, "bass guitar": 0.4},
            {"medium tempo": 0.6, "fast tempo": 0.3, "steady beat": 0.4}),
    "house": (0.8, {"house": 1.0, "electronic": 0.8},
              {"energetic": 0.6, "groovy": 0.7, "happy": 0.3, "uplifting": 0.3},
              {"drum machine": 0.95, "synthesizer": 0.9, "electric piano": 0.3, "female vocals": 0.3, "percussion": 0.3},
              {"steady beat": 0.8, "medium tempo": 0.3, "fast tempo": 0.5}),
    "techno": (0.7, {"techno": 1.0, "electronic": 0.8},
               {"dark": 0.5, "energetic": 0.6, "tense": 0.3, "mysterious": 0.3},
               {"drum machine": 0.95, "synthesizer": 0.95, "percussion": 0.3},
               {"steady beat": 0.8, "fast tempo": 0.6}),
    "ambient": (0.9, {"ambient": 1.0, "electronic": 0.4, "soundtrack": 0.2},
                {"calm": 0.8, "relaxing": 0.6, "dreamy": 0.6, "mysterious": 0.3, "melancholic": 0.2},
                {"synthesizer": 0.9, "piano": 0.35, "strings": 0.25, "flute": 0.1},
                {"slow tempo": 0.9}),
    "hip hop": (1.0, {"hip hop": 1.0, "lo-fi": 0.15, "funk": 0.1},
                {"groovy": 0.6, "energetic": 0.4, "dark": 0.25, "playful": 0.2, "aggressive": 0.2},
                {"drum machine": 0.85, "bass guitar": 0.3, "synthesizer": 0.5, "male vocals": 0.8, "piano": 0.2, "electric piano": 0.2},
                {"medium tempo": 0.6, "slow tempo": 0.2, "syncopated rhythm": 0.4, "steady beat": 0.3}),
    "lo-fi": (0.6, {"lo-fi": 1.0, "hip hop": 0.5, "jazz": 0.15},
              {"relaxing": 0.8, "calm": 0.6, "dreamy": 0.4, "melancholic": 0.3},
              {"electric piano": 0.6, "piano": 0.3, "drum machine": 0.8, "bass guitar": 0.3, "acoustic guitar": 0.2},
              {"slow tempo": 0.7, "medium tempo": 0.3, "steady beat": 0.3}),
    "jazz": (0.9, {"jazz": 1.0, "blues": 0.2, "funk": 0.1},
             {"relaxing": 0.4, "romantic": 0.3, "groovy": 0.4, "calm": 0.3, "playful": 0.2, "melancholic": 0.15},
             {"saxophone": 0.7, "piano": 0.7, "double bass": 0.75, "drums": 0.7, "trumpet": 0.4, "female vocals": 0.15},
             {"medium tempo": 0.5, "slow tempo": 0.3, "syncopated rhythm": 0.6}),
    "blues": (0.5, {"blues": 1.0, "rock": 0.3, "jazz": 0.1},
              {"melancholic": 0.6, "sad": 0.4, "groovy": 0.3, "romantic": 0.1},
              {"electric guitar": 0.8, "acoustic guitar": 0.3, "harmonica": 0.5, "bass guitar": 0.6, "drums": 0.6, "male vocals": 0.6, "piano": 0.2},
              {"slow tempo": 0.6, "medium tempo": 0.4}),
    "funk": (0.5, {"funk": 1.0, "pop": 0.1, "hip hop": 0.1},
             {"groovy": 0.95, "energetic": 0.5, "happy": 0.4, "playful": 0.4},
             {"bass guitar": 0.95, "electric guitar": 0.8, "drums": 0.9, "brass": 0.5, "electric piano": 0.3, "male vocals": 0.3},
             {"syncopated rhythm": 0.8, "medium tempo": 0.6}),
    "classical": (0.8, {"classical": 1.0, "orchestral": 0.4},
                  {"calm": 0.4, "romantic": 0.35, "melancholic": 0.3, "epic": 0.15, "uplifting": 0.2},
                  {"piano": 0.6, "strings": 0.5, "violin": 0.5, "cello": 0.4, "flute": 0.2},
                  {"slow tempo": 0.6, "medium tempo": 0.4}),
    "soundtrack": (0.7, {"soundtrack": 1.0, "orchestral": 0.7, "classical": 0.1},
                   {"epic": 0.7, "tense": 0.4, "dark": 0.3, "mysterious": 0.3, "uplifting": 0.3},
                   {"strings": 0.9, "brass": 0.7, "choir": 0.35, "percussion": 0.6, "piano": 0.2, "synthesizer": 0.2},
                   {"slow tempo": 0.4, "medium tempo": 0.4, "fast tempo": 0.2}),
    "folk": (0.8, {"folk": 1.0, "country": 0.2, "pop": 0.1},
             {"calm": 0.4, "melancholic": 0.4, "happy": 0.3, "romantic": 0.25, "uplifting": 0.2},
             {"acoustic guitar": 0.95, "violin": 0.3, "harmonica": 0.2, "male vocals": 0.5, "female vocals": 0.4, "flute": 0.1},
             {"slow tempo": 0.5, "medium tempo": 0.5}),
    "country": (0.5, {"country": 1.0, "folk": 0.3, "rock": 0.1},
                {"happy": 0.5, "uplifting": 0.3, "melancholic": 0.3, "romantic": 0.2},
                {"acoustic guitar": 0.8, "electric guitar": 0.4, "violin": 0.4, "harmonica": 0.2, "bass guitar": 0.5, "drums": 0.6, "male vocals": 0.7},
                {"medium tempo": 0.7, "steady beat": 0.4}),
    "reggae": (0.5, {"reggae": 1.0},
               {"relaxing": 0.6, "happy": 0.5, "groovy": 0.6, "uplifting": 0.2},
               {"bass guitar": 0.9, "electric guitar": 0.7, "drums": 0.8, "electric piano": 0.3, "male vocals": 0.7, "brass": 0.2},
               {"medium tempo": 0.6, "slow tempo": 0.3, "syncopated rhythm": 0.7}),
    "latin": (0.5, {"latin": 1.0, "jazz": 0.15, "pop": 0.2},
              {"happy": 0.5, "energetic": 0.5, "romantic": 0.3, "playful": 0.3, "groovy": 0.5},
              {"percussion": 0.9, "acoustic guitar": 0.5, "trumpet": 0.5, "piano": 0.3, "bass guitar": 0.5, "male vocals": 0.3, "female vocals": 0.3},
              {"fast tempo": 0.5, "medium tempo": 0.4, "syncopated rhythm": 0.7}),
}

SPEEDS = ("slow tempo", "medium tempo", "fast tempo", "very fast tempo")

TEMPLATES = [
    "{a_mood} {genre} piece {tempo_phrase}, built on {instruments}.",
    "This {genre} track feels {mood}; {instruments} carry it {tempo_phrase}.",
    "{Instruments} drive a {mood} {genre} tune {tempo_phrase}.",
    "An instrumental-sounding {genre} recording with {instruments}, {mood} in character, {tempo_phrase}.",
    "{Mood} {genre} music {tempo_phrase}: {instruments} fill the mix.",
]


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _draw(rng: random.Random, probs: dict[str, float], at_least_one: bool) -> list[str]:
    chosen = [t for t, p in probs.items() if rng.random() < p]
    if at_least_one and not chosen:
        tags, weights = zip(*probs.items())
        chosen = [rng.choices(tags, weights=weights)[0]]
    return chosen


def _caption(rng: random.Random, genres: list[str], moods: list[str], instruments: list[str], tempos: list[str]) -> str:
    tempo_phrase = {
        "slow tempo": "at a slow tempo", "medium tempo": "at a medium tempo", "fast tempo": "at a fast tempo",
        "very fast tempo": "at a very fast tempo", "steady beat": "over a steady beat",
        "syncopated rhythm": "with a syncopated rhythm",
    }
    phrase = " and ".join(tempo_phrase[t] for t in tempos) or "at an easy pace"
    mood = _join(moods) or "plain"
    inst = _join(instruments) or "a small band"
    text = rng.choice(TEMPLATES).format(
        a_mood=("An " if mood[:1] in "aeiou" else "A ") + mood, mood=mood, Mood=mood[:1].upper() + mood[1:], genre=" ".join(genres) if len(genres) < 3 else _join(genres),
        tempo_phrase=phrase, instruments=inst, Instruments=inst[:1].upper() + inst[1:],
    )
    return text


def build(seed: int = SEED, n: int = N_SETS) -> list[dict]:
    import yaml

    taxonomy = yaml.safe_load((ROOT / "src" / "tagtune" / "resources" / "taxonomy.yaml").read_text())
    order = [t for tags in taxonomy.values() for t in tags]
    rng = random.Random(seed)
    names = list(STYLES)
    weights = [STYLES[s][0] for s in names]
    rows = []
    for i in range(n):
        _, genres, moods, instruments, tempos = STYLES[rng.choices(names, weights=weights)[0]]
        first = next(iter(genres))
        g = [first] + [t for t, p in list(genres.items())[1:] if rng.random() < p]
        m = _draw(rng, moods, at_least_one=True)[:3]
        inst = _draw(rng, instruments, at_least_one=True)[:5]
        speeds = {t: p for t, p in tempos.items() if t in SPEEDS}
        rhythms = {t: p for t, p in tempos.items() if t not in SPEEDS}
        tp = ([rng.choices(list(speeds), weights=list(speeds.values()))[0]] if speeds else []) + _draw(rng, rhythms, at_least_one=False)
        tags = sorted(set(g + m + inst + tp), key=order.index)
        by_cat = {c: [t for t in tags if t in taxonomy[c]] for c in taxonomy}
        rows.append({"id": f"demo-{i:04d}", "tags": tags, **by_cat,
                     "caption": _caption(rng, by_cat["genre"], by_cat["mood"], by_cat["instrument"], by_cat["tempo"])})
    return rows


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if the packaged file differs")
    args = ap.parse_args()
    text = render(build())
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{OUT} is out of date: run python scripts/make_demo_data.py")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {len(text.splitlines())} tag sets to {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
