"""``tagtune dataset report`` in a real browser: headless Chromium (Debian's package, driven by
Playwright) opens the page from disk, every player loads its clip, nothing fails and nothing is
logged as an error; the gallery's filters work. A screenshot of each page is kept as an artefact
(under tmp_path, and copied to $TAGTUNE_ARTIFACTS when set). Skipped, with the reason, where
Chromium or Playwright is missing (``bash scripts/install-chromium.sh`` installs Chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import run_cli
from helpers.report_dataset import make_dataset
from tagtune.pipeline.report_page import write_report

# This machine's closed network refuses Chromium's own background connections (updates, sync,
# QUIC probes); without these flags it logs errors that have nothing to do with the page.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOADED_JS = """() => Array.from(document.querySelectorAll('audio')).every(a => a.readyState >= 1 || a.error)"""
AUDIO_JS = """() => Array.from(document.querySelectorAll('audio')).map(a => ({
    src: a.getAttribute('src'), duration: a.duration, error: a.error ? a.error.code : null}))"""


def _chromium() -> str:
    for name in (os.environ.get("TAGTUNE_CHROMIUM", ""), "chromium", "chromium-browser"):
        found = shutil.which(name) if name else None
        if found:
            return found
    pytest.skip("Chromium is not installed (bash scripts/install-chromium.sh, or apt install chromium)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A headless Chromium with a fresh profile (user-data-dir), shared by the module's tests."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing (pip install -e '.[dev]')")
    executable = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=executable, headless=True,
                                                        args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(30_000)  # every wait on the page gives up after 30 s
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """The demo pipeline's dataset: 20 clips of synth audio that really plays its tempo, plus 4
    counterfactual pairs."""
    out = tmp_path_factory.mktemp("report-demo") / "demo"
    res = run_cli("pipeline", "run", "--preset", "demo", "-n", "20", "-o", out, "vae:sample.counterfactual=4")
    assert res.code == 0, res.err
    return out


def _open(browser, page_path: Path):
    """Load the page from disk; returns (page, console errors, failed requests)."""
    page = browser.new_page()
    errors: list[str] = []
    failed: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: failed.append(f"{req.failure} {req.url}"))
    page.goto(page_path.resolve().as_uri())
    page.wait_for_function(LOADED_JS)
    return page, errors, failed


def _keep_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=False)
    artefacts = os.environ.get("TAGTUNE_ARTIFACTS")
    if artefacts:
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artefacts) / shot.name)
    return shot


def _check_page(browser, page_path: Path, tmp_path: Path, name: str) -> list[dict]:
    page, errors, failed = _open(browser, page_path)
    try:
        audio = page.evaluate(AUDIO_JS)
        assert audio, "the page has no players"
        bad = [a for a in audio if a["error"] is not None or not a["duration"] or a["duration"] <= 0]
        assert not bad, f"players that did not load their clip: {bad[:5]}"
        # With preload="metadata" Chromium cancels (net::ERR_ABORTED) the rest of a clip once it has
        # read the header: that is a finished load (its duration is known, checked above), not a failure.
        real = [f for f in failed if "ERR_ABORTED" not in f]
        assert not real, f"failed requests: {real[:5]}"
        assert not errors, f"console errors: {errors[:5]}"
        shot = _keep_screenshot(page, tmp_path, name)
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
        return audio
    finally:
        page.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_report_loads_every_clip_in_a_real_browser(browser, demo_run, tmp_path):
    """The page sits in another folder than the dataset: its relative paths must still reach the
    clips; the pipeline's counterfactual pairs reach the page's gallery."""
    result = write_report(demo_run, tmp_path / "pages" / "demo.html", per_concept=3)
    audio = _check_page(browser, result.path, tmp_path, "report-demo")
    assert len({a["src"] for a in audio}) == result.shown
    assert all(abs(a["duration"] - 4.0) < 0.05 for a in audio)  # the demo preset's 4 s clips
    page = result.path.read_text(encoding="utf-8")
    assert page.count('<div class="pair">') >= 4  # each pair under its concept


@pytest.mark.timeout(180)
def test_copied_audio_and_pairs_load_in_a_real_browser(browser, tmp_path):
    ds = make_dataset(tmp_path / "run")
    result = write_report(ds, tmp_path / "site" / "index.html", per_concept=4, copy_audio=True)
    shutil.rmtree(ds)  # a published page needs nothing of the dataset folder
    audio = _check_page(browser, result.path, tmp_path, "report-copied")
    assert all(a["src"].startswith("index-audio/") and abs(a["duration"] - 0.5) < 0.01 for a in audio)


@pytest.mark.timeout(180)
def test_gallery_filters_work(browser, tmp_path):
    ds = make_dataset(tmp_path / "run")
    result = write_report(ds, tmp_path / "r.html", per_concept=2)
    page, errors, _ = _open(browser, result.path)
    try:
        visible = "() => Array.from(document.querySelectorAll('section.concept')).filter(s => !s.hidden).map(s => s.dataset.tag)"
        everything = page.evaluate(visible)
        page.click("button[data-filter='tempo']")
        assert sorted(page.evaluate(visible)) == ["fast tempo", "medium tempo", "slow tempo"]
        assert page.is_hidden("section.category[data-category='genre']")
        page.click("button[data-filter='all']")
        page.fill("#tag-search", "harmon")
        assert page.evaluate(visible) == ["harmonica"]
        assert page.inner_text("#gallery-count") == f"1 of {len(everything)} tags"
        page.fill("#tag-search", "")
        page.check("#missed-only")
        assert page.evaluate(visible) == ["fast tempo"]  # row-04 missed its fast tempo
        assert not errors
    finally:
        page.close()
