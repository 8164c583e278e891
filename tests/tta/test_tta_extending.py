"""What third-party members of the audio stage get: a checker its own settings whatever its name, a FAD
backbone ``evaluate.fad.options``, an audio backend a YAML of name, backend and options only; the KLD
row of the evaluate table; the verify chart drawn through the one plotting module."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from helpers import read_jsonl, run_cli, write_jsonl
from tagtune.config.commands import compose_command
from tagtune.tta.config import COMMANDS, EVALUATE, VERIFY


class KeyLike:
    """A third-party checker whose name is also a section of ``verification`` (``key``)."""

    name = "key"

    def __init__(self, settings, context):
        self.settings = settings

    def claims(self, tag, category):
        return False

    def judge(self, clips, tags):
        return [{} for _ in clips]


def _context(cfg, folder: Path):
    from tagtune.tta.checkers import CheckerContext

    return CheckerContext(cfg=cfg, folder=folder, candidates={})


def test_a_checker_named_like_a_section_reads_its_custom_settings(tmp_path):
    from tagtune.tta.checkers import ClapChecker, TempoChecker, load_checkers
    from tagtune.tta.config import KeySettings

    cfg = compose_command(VERIFY, COMMANDS, ["+verification.custom.key.threshold=3", "verification.tempo.tolerance=0.2"])
    [key] = load_checkers(cfg.verification, _context(cfg, tmp_path), [("key", KeyLike)])
    assert key.settings == {"threshold": 3} and not isinstance(key.settings, KeySettings)
    built_in = load_checkers(cfg.verification, _context(cfg, tmp_path),
                             [("tagtune.tta.checkers:TempoChecker", TempoChecker), ("clap", ClapChecker)])
    assert built_in[0].tolerance == 0.2 and built_in[1].settings == cfg.verification.clap  # by path or name: its section


BACKBONE = '''
"""A third-party FAD backbone whose settings live in evaluate.fad.options."""

import numpy as np


class Scaled:
    def __init__(self, fad):
        own = fad.options.get("scaled") or {}
        self.gain, self.name, self.revision = float(own.get("gain", 1.0)), "scaled", "v1"

    def frames(self, audio, rate):
        return self.gain * np.asarray(audio, dtype=np.float64).reshape(-1, 4)[:8]
'''


def test_a_third_party_backbone_reads_evaluate_fad_options(tmp_path, monkeypatch):
    from tagtune.tta.backbones import load_backbone

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "scaled_backbone.py").write_text(textwrap.dedent(BACKBONE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    plain = compose_command(EVALUATE, COMMANDS)
    assert plain.evaluate.fad.options == {}  # the YAML's default: nothing for the built-ins
    cfg = compose_command(EVALUATE, COMMANDS, ["+evaluate.fad.options.scaled.gain=2.5",
                                               "evaluate.fad.backbones=[scaled_backbone:Scaled]"])
    backbone = load_backbone(cfg.evaluate.fad.backbones[0], cfg.evaluate.fad)
    assert backbone.gain == 2.5 and backbone.frames([1.0] * 8, 16000).tolist() == [[2.5] * 4, [2.5] * 4]


TONE = '''
"""A third-party audio backend: a sine tone at model.options.frequency."""

import numpy as np

from tagtune.tta.backends.base import steps_for_duration


class Tone:
    shaped_by = "caption"

    def __init__(self, model, device, tagmap):
        self.name, self.revision, self.threads = model.name, model.revision, model.threads
        self.seen = (model.revision, model.trust_remote_code, model.dtype, model.threads)
        self.frequency = float(model.options["frequency"])
        self.sample_rate, self.frame_rate, self.delay, self.max_steps = 8000, 50.0, 0, 3000

    def steps_for(self, seconds):
        return steps_for_duration(seconds, self.frame_rate, self.delay)

    def samples_for_steps(self, steps):
        return steps * 160

    def provenance(self, prompt, seed):
        return {"seen": list(self.seen)}

    def generate(self, prompts, seeds, steps, params):
        t = np.arange(self.samples_for_steps(steps)) / self.sample_rate
        return np.stack([0.5 * np.sin(2 * np.pi * self.frequency * t)[None] for _ in prompts]).astype(np.float32)
'''


def test_a_backend_yaml_needs_only_name_backend_and_options(tmp_path, monkeypatch):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "tone_only.py").write_text(textwrap.dedent(TONE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    (tmp_path / "configs" / "model" / "tta").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "tta" / "tone.yaml").write_text(
        "name: tone\nbackend: tone_only:Tone\noptions:\n  frequency: 330.0\n", encoding="utf-8")
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "a tone"}])
    res = run_cli("tta", "generate", prompts, "-o", tmp_path / "out", "--config-dir", tmp_path / "configs",
                  "model=tta/tone", "generation.duration=0.5")
    assert res.code == 0, res.err
    [row] = read_jsonl(tmp_path / "out" / "metadata.jsonl")
    assert row["provenance"]["audio"]["seen"] == [None, None, None, None] and row["duration"] == 0.5


def test_evaluate_prints_a_kld_row_like_the_fad_rows(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": f"c{i}", "tags": ["fast tempo"], "caption": "fast"} for i in range(3)])
    res = run_cli("tta", "generate", prompts, "-o", tmp_path / "out", "model=tta/synth", "generation.duration=1",
                  "--preset", "quick_test", "device=cpu")
    assert res.code == 0, res.err
    res = run_cli("tta", "evaluate", tmp_path / "out", "--preset", "quick_test", "--reference", tmp_path / "out" / "audio",
                  "-o", tmp_path / "ev", "evaluate.kld.classifier=tiny", "device=cpu")
    assert res.code == 0, res.err
    kld = json.loads((tmp_path / "ev" / "summary.json").read_text(encoding="utf-8"))["kld"]
    lines = [" ".join(ln.replace("│", " ").split()) for ln in res.out.splitlines()]
    paired = next(ln for ln in lines if ln.startswith("KLD (tiny) ") and "distribution" not in ln.split()[2])
    assert paired.split()[2] == f"{kld['value']:.4g}" and "3 pair(s)" in paired
    assert any(ln.startswith(f"KLD (tiny) distribution {kld['distribution']:.4g}") for ln in lines)


def test_kld_rows_say_skipped_with_the_note():
    from rich.table import Table

    from tagtune.cli.tta import _kld_rows

    table = Table("metric", "value", "note")
    _kld_rows(table, {"value": None, "note": "skipped: no reference audio (evaluate.reference)"})
    _kld_rows(table, None)
    cells = [list(c.cells) for c in table.columns]
    assert cells == [["KLD (classifier)"], ["skipped"], ["skipped: no reference audio (evaluate.reference)"]]


def test_the_verify_chart_goes_through_the_plotting_module(tmp_path, monkeypatch):
    import tagtune.records.plots as plots
    from tagtune.tta.verify_report import plot

    saved = []
    real = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: saved.append(path) or real(fig, path))
    report = {"by_tag": {"fast tempo": {"category": "tempo", "judged": 4, "rate": 0.5},
                         "piano": {"category": "instrument", "judged": 2, "rate": 1.0},
                         "rock": {"category": None, "judged": 0, "rate": None}}}
    path = plot(report, tmp_path / "chart.png")
    assert saved == [tmp_path / "chart.png"] and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.pyplot().get_fignums() == []  # closed
    assert plot({"by_tag": {"rock": {"category": None, "judged": 0, "rate": None}}}, tmp_path / "none.png") is None
