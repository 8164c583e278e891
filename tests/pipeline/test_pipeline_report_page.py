"""``tagtune dataset report`` without a browser: what the page holds, where its players point,
what --copy-audio copies, and the files it refuses to overwrite (the browser test is
test_pipeline_report.py)."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from helpers import run_cli
from helpers.report_dataset import HOSTILE, make_dataset
from tagtune.errors import ConfigError, OutputError
from tagtune.pipeline.report_page import write_report


class _Audio(HTMLParser):
    """The ``src`` of every ``<audio>`` element, and every ``<script>`` body."""

    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.scripts = 0
        self.preload: set[str | None] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "audio":
            self.srcs.append(dict(attrs)["src"] or "")
            self.preload.add(dict(attrs).get("preload"))
        self.scripts += tag == "script"


def audio_of(page: Path) -> _Audio:
    parser = _Audio()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("report") / "run")


def test_captions_and_tags_are_escaped(dataset, tmp_path):
    page = write_report(dataset, tmp_path / "r.html").path.read_text(encoding="utf-8")
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(&quot;caption&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page
    assert audio_of(tmp_path / "r.html").scripts == 1  # the page's own filter script, nothing injected


@pytest.mark.parametrize("where", ["inside", "beside", "elsewhere"])
def test_audio_paths_are_relative_and_resolve_to_the_clips(dataset, tmp_path, where):
    """The players point at the dataset's own clips, by paths relative to the page, percent-encoded
    (a file name with '#' and '%' still resolves), wherever the page is written."""
    out = {"inside": dataset / "report.html", "beside": dataset.parent / "report.html",
           "elsewhere": tmp_path / "a" / "b" / "page.html"}[where]
    try:
        write_report(dataset, out, per_concept=20)
        found = audio_of(out)
        assert found.preload == {"metadata"}
        assert len(set(found.srcs)) == 14  # every clip is sampled for some tag at 20 per concept
        for src in found.srcs:
            assert not src.startswith(("/", "file:")) and "://" not in src
            clip = (out.parent / unquote(src)).resolve()
            assert clip.is_file() and clip.is_relative_to(dataset.resolve()), src
        assert any("%23" in s and "%25" in s for s in found.srcs)  # "odd #5 100%.wav"
    finally:
        out.unlink(missing_ok=True)


def test_copy_audio_copies_only_the_sampled_clips_and_the_page_points_at_them(dataset, tmp_path):
    out = tmp_path / "site" / "index.html"
    result = write_report(dataset, out, per_concept=1, copy_audio=True, seed=3)
    folder = tmp_path / "site" / "index-audio"
    copied = {p.relative_to(folder).as_posix() for p in folder.rglob("*.wav")}
    srcs = {unquote(s) for s in audio_of(out).srcs}
    assert result.audio_dir == folder and result.copied == len(copied) == len(srcs)
    assert {f"index-audio/{c}" for c in copied} == srcs
    assert len(copied) < 14  # one clip per tag: fewer than the dataset holds
    write_report(dataset, out, per_concept=1, copy_audio=True, seed=4)  # another sample: stale copies go
    again = {p.relative_to(folder).as_posix() for p in folder.rglob("*.wav")}
    assert {f"index-audio/{c}" for c in again} == {unquote(s) for s in audio_of(out).srcs}
    (folder / "mine.txt").write_text("keep", encoding="utf-8")
    write_report(dataset, out, per_concept=1, copy_audio=True, seed=3)
    assert (folder / "mine.txt").read_text(encoding="utf-8") == "keep"


def test_copy_audio_into_the_dataset_folder_is_refused(dataset):
    with pytest.raises(ConfigError, match="inside the dataset folder"):
        write_report(dataset, dataset / "r.html", copy_audio=True)
    assert not (dataset / "r-audio").exists()


def test_the_page_names_no_absolute_path_of_this_machine(dataset, tmp_path):
    """The provenance holds paths of this machine (a model folder, an override, an attribution):
    the page shows their last part only."""
    page = write_report(dataset, tmp_path / "r.html").path.read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    for path in (str(dataset.parent), str(tmp_path), os.getcwd(), str(Path.home())):
        assert path not in text
    assert "musicgen-local" in text and "data.taxonomy_path=taxonomy.yaml" in text and "my tags.jsonl" in text


def test_pairs_are_shown_side_by_side_with_the_tag_and_without(dataset, tmp_path):
    page = write_report(dataset, tmp_path / "r.html", per_concept=4).path.read_text(encoding="utf-8")
    section = page.split('id="c-harmonica"', 1)[1].split('<section class="concept"', 1)[0]
    pair = section.split('<div class="pair">', 1)[1].split('<div class="pair-members">', 1)[1]
    first, second = pair.split('<figure class="clip">')[1:3]
    assert "with harmonica" in first and "pair-0001-add" in first and ">harmonica</li>" in first
    assert "without harmonica" in second and "pair-0001-base" in second
    assert re.findall(r'<li class="(\w+)"[^>]*>harmonica</li>', second) == ["absent"]  # struck out, not a tag it has
    assert "1 counterfactual pair" in section
    elsewhere = page.split('id="c-rock"', 1)[1].split('<section class="concept"', 1)[0]
    assert '<div class="pair">' not in elsewhere  # a pair shows under its own concept only


def test_realisation_and_verdicts_come_from_the_rows(dataset, tmp_path):
    """row-04 missed its 'fast tempo': the chip says so, the tag's rate counts it, and the
    concept is marked for the 'missed' filter (a pair's member without the concept does not
    count as missing it)."""
    page = write_report(dataset, tmp_path / "r.html", per_concept=20).path.read_text(encoding="utf-8")
    clip = page.split("row-04 · train")[0].rsplit('<figure class="clip">', 1)[1]
    assert '<li class="miss" title="not heard in the audio">fast tempo</li>' in clip
    assert '<li class="nj" title="no checker judges this tag">drums</li>' in clip
    assert re.search(r'<a href="#c-fast-tempo">fast tempo</a></td><td>tempo</td><td>4</td><td>4</td><td>3</td>', page)
    assert 'data-tag="fast tempo" data-missed="1"' in page and 'data-tag="slow tempo" data-missed="0"' in page
    assert 'data-tag="harmonica" data-missed="0"' in page


def test_measures_are_plotted_when_present_and_said_not_measured_otherwise(tmp_path):
    plain = write_report(make_dataset(tmp_path / "plain", measures=False, verified=False), tmp_path / "a.html")
    text = plain.path.read_text(encoding="utf-8")
    for what in ("Loudness: not measured", "Tempo (BPM): not measured", "Key: not measured", "Not verified"):
        assert what in text
    measured = write_report(make_dataset(tmp_path / "m"), tmp_path / "b.html").path.read_text(encoding="utf-8")
    assert "not measured" not in measured
    assert measured.count("data:image/png;base64,") == 3  # co-occurrence, loudness, BPM per tempo tag
    assert re.search(r"<td>slow tempo</td><td>4</td><td>7\d</td>", measured)  # median BPM of the slow clips


def test_the_sample_is_seeded(dataset, tmp_path):
    a = write_report(dataset, tmp_path / "a.html", per_concept=1, seed=1).path.read_text(encoding="utf-8")
    b = write_report(dataset, tmp_path / "b.html", per_concept=1, seed=1).path.read_text(encoding="utf-8")
    write_report(dataset, tmp_path / "c.html", per_concept=1, seed=2)
    assert a == b
    assert audio_of(tmp_path / "a.html").srcs != audio_of(tmp_path / "c.html").srcs


def test_a_file_it_did_not_write_is_refused_and_its_own_is_rewritten(dataset, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>", encoding="utf-8")
    with pytest.raises(OutputError, match="was not written by tagtune dataset report"):
        write_report(dataset, mine)
    assert mine.read_text(encoding="utf-8") == "<html>my notes</html>"
    out = tmp_path / "r.html"
    write_report(dataset, out, per_concept=1)
    write_report(dataset, out, per_concept=2)
    assert "Up to 2 clips per tag" in out.read_text(encoding="utf-8")


def test_cli_writes_the_page_and_says_how_to_open_it(dataset, tmp_path):
    res = run_cli("dataset", "report", dataset.parent, "-o", tmp_path / "r.html", "--per-concept", "2")
    assert res.code == 0, res.err
    assert str(tmp_path / "r.html") in res.out and (tmp_path / "r.html").resolve().as_uri() in res.out
    res = run_cli("dataset", "report", dataset, "-o", dataset.parent / "r.html")  # default-style output beside
    assert res.code == 0, res.err


def test_cli_errors_are_one_line(dataset, tmp_path):
    run_cli("dataset", "report", tmp_path / "nothing").error("no dataset here", str(tmp_path / "nothing"))
    run_cli("dataset", "report", dataset, "--per-concept", "0", "-o", tmp_path / "x.html").error("--per-concept")
    (tmp_path / "taken.html").write_text("mine", encoding="utf-8")
    run_cli("dataset", "report", dataset, "-o", tmp_path / "taken.html").error("taken.html", "not written by")
    run_cli("dataset", "report", dataset, "-o", tmp_path).error("is a directory")


def test_a_missing_clip_names_its_row(tmp_path):
    ds = make_dataset(tmp_path / "run")
    (ds / "train" / "audio" / "row-00.wav").unlink()
    line = run_cli("dataset", "report", ds, "-o", tmp_path / "r.html", "--per-concept", "20").error("row-00.wav", only=False)
    assert "train/metadata.parquet" in line and "file_name" in line
    assert not (tmp_path / "r.html").exists()


def test_pair_columns_survive_a_first_row_without_them():
    """The dataset's schema is the union of its rows' columns: rows leave empty optional fields out,
    and a first row outside any pair once cost the whole dataset its pair_id, concept and edit."""
    from tagtune.pipeline.hf import arrow_schema

    rows = [{"id": "a", "tags": ["rock"], "provenance": {"tags": {"seed": 1}}},
            {"id": "b", "tags": ["rock"], "pair_id": "p1", "concept": "rock", "edit": "base", "provenance": {}}]
    assert arrow_schema(rows).names == ["id", "tags", "pair_id", "concept", "edit", "provenance"]
