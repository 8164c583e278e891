"""Typed configs of the tta commands (each reads only its keys) and the plugin families (backends, checkers, backbones)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import soundfile as sf
import yaml

from helpers import read_jsonl, run_cli, write_jsonl

TONE_BACKEND = '''
"""A third-party audio backend: a sine tone at model.options.frequency, whatever the prompt."""

import numpy as np

from tagtune.tta.backends.base import steps_for_duration


class ToneBackend:
    shaped_by = "caption"

    def __init__(self, model, device, tagmap):
        self.name, self.revision, self.threads = model.name, model.revision, None
        self.frequency = float(model.options["frequency"])
        self.sample_rate, self.frame_rate, self.delay, self.max_steps = 8000, 50.0, 0, 3000

    def steps_for(self, seconds):
        return steps_for_duration(seconds, self.frame_rate, self.delay)

    def samples_for_steps(self, steps):
        return steps * 160

    def provenance(self, prompt, seed):
        return {"frequency": self.frequency}

    def generate(self, prompts, seeds, steps, params):
        t = np.arange(self.samples_for_steps(steps)) / self.sample_rate
        tone = 0.5 * np.sin(2 * np.pi * self.frequency * t)
        return np.stack([tone[None] for _ in prompts]).astype(np.float32)
'''

TONE_YAML = """\
# A sine tone: a backend of one's own (one module plus this file).
name: tone-440
backend: tone_backend:ToneBackend
revision: v1
trust_remote_code: false
dtype: auto
threads: null
options:
  frequency: 440.0
"""


def _show(*args: str) -> dict:
    res = run_cli("tta", *args, "--show-config")
    assert res.code == 0, res.err
    return yaml.safe_load(res.out)


# -- each command reads only its keys -----------------------------------------------------------------

def test_an_unread_key_the_user_sets_is_refused_in_one_line(tmp_path):
    res = run_cli("tta", "merge", tmp_path, "generation.batch_size=4")
    line = res.error("generation.batch_size", "is not read by `tagtune tta merge`")
    assert "tagtune tta generate" in line  # the command that reads it
    res = run_cli("tta", "generate", "p.jsonl", "evaluate.fad.backbones=[vggish]", "-o", tmp_path / "out")
    assert "evaluate.fad.backbones" in res.error("is not read by `tagtune tta generate`")
    assert not (tmp_path / "out").exists()


def test_show_config_of_merge_shows_only_the_folder():
    assert _show("merge", "somewhere") == {"generate": {"output": "somewhere"}}


def test_show_config_lists_only_each_commands_sections():
    generate = _show("generate", "p.jsonl", "--preset", "quick_test")
    assert set(generate) == {"task_name", "seed", "device", "paths", "data", "model", "tagmap", "generation", "generate",
                             "evaluate", "verification"}
    # the CLAP model and the verification settings are recorded for `tta verify DIR`; FAD is not
    assert set(generate["evaluate"]) == {"clap_model", "revision", "max_seconds", "dtype", "tiny"}
    assert "input" not in generate["verification"] and "checkers" in generate["verification"]
    evaluate = _show("evaluate", "out", "--preset", "quick_test")
    assert set(evaluate) == {"seed", "device", "paths", "evaluate"} and evaluate["evaluate"]["fad"]["backbones"] == ["tiny"]
    verify = _show("verify", "out", "--shard", "1/2")
    assert set(verify) == {"device", "paths", "tagmap", "evaluate", "verification"}
    assert verify["verification"]["shard"] == "1/2" and "fad" not in verify["evaluate"]


def test_a_preset_key_for_a_sibling_command_is_accepted_and_dropped():
    # quick_test sets generation.duration and evaluate.fad.backbones: not read by merge or verify
    assert _show("merge", "somewhere", "--preset", "quick_test") == {"generate": {"output": "somewhere"}}
    assert "generation" not in _show("verify", "out", "--preset", "quick_test")


def test_recorded_keys_verify_does_not_read_are_dropped(tmp_path):
    from tagtune.config.commands import compose_command
    from tagtune.tta.config import COMMANDS, VERIFY
    from tagtune.tta.verify import recorded_settings

    (tmp_path / "config.yaml").write_text(yaml.safe_dump({
        "verification": {"checkers": ["tempo"], "retired_setting": 3, "input": "elsewhere"},
        "evaluate": {"clap_model": "tiny", "tiny": {"seed": 5}}, "model": {"name": "x"}}))
    recorded = recorded_settings(tmp_path)
    assert recorded == {"verification": {"checkers": ["tempo"]}, "evaluate": {"clap_model": "tiny", "tiny": {"seed": 5}}}
    cfg = compose_command(VERIFY, COMMANDS, recorded=recorded)
    assert cfg.verification.checkers == ["tempo"] and cfg.evaluate.tiny.seed == 5


def test_verification_settings_given_to_generate_are_what_verify_uses(tmp_path):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "x", "tags": ["fast tempo", "piano"]}])
    res = run_cli("tta", "generate", prompts, "-o", tmp_path / "out", "model=tta/synth", "generation.duration=2",
                  "verification.checkers=[tempo]", "device=cpu")
    assert res.code == 0, res.err
    assert _show("verify", tmp_path / "out")["verification"]["checkers"] == ["tempo"]


# -- audio backends --------------------------------------------------------------------------------------

def test_a_third_party_backend_is_one_module_and_one_yaml(tmp_path, monkeypatch):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "tone_backend.py").write_text(textwrap.dedent(TONE_BACKEND), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    (tmp_path / "configs" / "model" / "tta").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "tta" / "tone.yaml").write_text(TONE_YAML, encoding="utf-8")
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "calm piano"}, {"id": "b", "caption": "drums"}])
    res = run_cli("tta", "generate", prompts, "-o", tmp_path / "out", "--config-dir", tmp_path / "configs",
                  "model=tta/tone", "generation.duration=0.5")
    assert res.code == 0, res.err
    rows = read_jsonl(tmp_path / "out" / "metadata.jsonl")
    assert [r["id"] for r in rows] == ["a", "b"]
    audio = rows[0]["provenance"]["audio"]
    assert (audio["model"], audio["revision"], audio["frequency"]) == ("tone-440", "v1", 440.0)
    data, rate = sf.read(tmp_path / "out" / rows[0]["file_name"])
    assert rate == 8000 == rows[0]["sample_rate"] and len(data) == 4000
    spectrum = np.abs(np.fft.rfft(data))
    assert np.argmax(spectrum) * rate / len(data) == pytest.approx(440.0, abs=2.0)


@pytest.mark.parametrize(("backend", "message"), [
    ("synht", "unknown audio backend 'synht' (did you mean 'synth'?)"),
    ("os:system", "'os:system' is not a"),
    ("tagtune.tta.checkers:TempoChecker", "has no steps_for(), samples_for_steps(), provenance(), generate()"),
])
def test_a_bad_backend_is_one_line_before_anything_is_written(tmp_path, backend, message):
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "caption": "x"}])
    res = run_cli("tta", "generate", prompts, "-o", tmp_path / "out", f"model.backend={backend}")
    res.error(message)
    assert not (tmp_path / "out").exists()


# -- checkers and backbones ----------------------------------------------------------------------------------

def test_a_checker_path_that_is_not_a_checker_class_is_one_line(tmp_path):
    res = run_cli("tta", "verify", tmp_path, "verification.checkers=[os:system]")
    res.error("'os:system' is not a checker")
    res = run_cli("tta", "verify", tmp_path, "verification.checkers=[tempo,no_such_checker]")
    res.error("unknown checker 'no_such_checker'")


def test_a_checker_with_a_missing_package_names_what_to_install(monkeypatch):
    from tagtune.config.commands import compose_command
    from tagtune.errors import DependencyError
    from tagtune.tta.checkers import TempoChecker, checker_classes
    from tagtune.tta.config import COMMANDS, VERIFY

    monkeypatch.setattr(TempoChecker, "requires", ("tagtune_no_such_package",))
    cfg = compose_command(VERIFY, COMMANDS)
    with pytest.raises(DependencyError) as info:
        checker_classes(cfg.verification)
    assert str(info.value) == ("the checker 'tempo' needs tagtune_no_such_package, which is not installed (hint: pip install "
                               "tagtune_no_such_package, or choose another checker (verification.checkers))")


def test_a_backbone_with_a_missing_package_gives_the_plugins_message(monkeypatch):
    from tagtune.config.commands import compose_command
    from tagtune.errors import DependencyError
    from tagtune.tta.backbones import Pann, load_backbone
    from tagtune.tta.config import COMMANDS, EVALUATE

    monkeypatch.setattr(Pann, "requires", ("tagtune_no_such_package",))
    cfg = compose_command(EVALUATE, COMMANDS)
    with pytest.raises(DependencyError) as info:
        load_backbone("pann", cfg.evaluate.fad)
    assert str(info.value) == ("the FAD backbone 'pann' needs tagtune_no_such_package, which is not installed (hint: "
                               "pip install 'tagtune[eval]', or choose another FAD backbone (evaluate.fad.backbones))")


def test_an_unknown_backbone_is_refused_before_scoring(tmp_path):
    res = run_cli("tta", "evaluate", tmp_path, "--preset", "quick_test", "evaluate.fad.backbones=[vgish]")
    res.error("evaluate.fad.backbones: unknown FAD backbone 'vgish' (did you mean 'vggish'?)")
    assert not (tmp_path / "scores").exists()
