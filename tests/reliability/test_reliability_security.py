"""Security: no remote code by default, weights-only loading, no pickle in our formats, no path escape."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tagtune.config.compose import compose
from tagtune.files.ids import safe_id
from tagtune.models.hub import load_pretrained

SRC = Path(__file__).resolve().parents[2] / "src" / "tagtune"
CONFIG = Path(__file__).resolve().parents[2] / "config"


def _python_files():
    return sorted(SRC.rglob("*.py"))


def test_no_source_file_turns_remote_code_on():
    offenders = [str(p) for p in _python_files() if re.search(r"trust_remote_code\s*=\s*True", p.read_text())]
    assert offenders == []


def test_every_model_config_keeps_remote_code_off():
    """Checked on the composed configs: a model option may inherit its settings from another one."""
    mains = {"caption": "caption_inference", "tta": "tta_inference"}
    files = list((CONFIG / "model").rglob("*.yaml"))
    assert files
    checked = 0
    for path in files:
        stage = path.parent.name
        if stage not in mains:  # vae configs build their own module, no remote code involved
            continue
        model = compose(mains[stage], [f"model={stage}/{path.stem}"]).model
        if model.get("backend", "llm") in ("llm", "transformers", "audiocraft"):  # loads a model: says so explicitly
            assert model.trust_remote_code is False, path
            checked += 1
        else:  # a baseline that builds its output without loading a model
            assert model.get("trust_remote_code", False) is False, path
    assert checked >= 9
    for name in ("caption_fine_tuning", "caption_inference", "tta_inference"):
        assert compose(name).model.trust_remote_code is False


def test_load_pretrained_passes_remote_code_off_unless_asked():
    seen = {}

    def loader(name, **kwargs):
        seen.update(kwargs)
        return "ok"

    assert load_pretrained(loader, "x") == "ok"
    assert seen["trust_remote_code"] is False
    load_pretrained(loader, "x", trust_remote_code=True)
    assert seen["trust_remote_code"] is True


def test_every_torch_load_is_weights_only():
    for path in _python_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" and getattr(getattr(node.func, "value", None), "id", None) == "torch":
                kwargs = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kwargs and getattr(kwargs["weights_only"], "value", None) is True, f"{path}:{node.lineno}"


def test_no_pickle_in_our_own_code():
    for path in _python_files():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                assert not any(n.split(".")[0] in ("pickle", "dill", "cloudpickle", "joblib") for n in names), f"{path}:{node.lineno}"


@pytest.mark.slow
def test_vae_model_dir_is_safetensors_json_and_yaml_only(tagtune_cli, tmp_path):
    out = tmp_path / "vae"
    proc = tagtune_cli("vae", "train", "--preset", "quick_test", "-o", out)
    assert proc.returncode == 0, proc.stderr
    for path in out.iterdir():
        if path.is_file():
            assert path.suffix in (".safetensors", ".json", ".yaml", ".csv", ".png", ".md"), path
    # a pickle disguised as weights is refused, not unpickled
    import pickle as _pickle_only_to_build_a_hostile_file  # noqa: PLC0415

    (out / "model.safetensors").write_bytes(_pickle_only_to_build_a_hostile_file.dumps({"x": 1}))
    bad = tagtune_cli("vae", "sample", "--model", out, "-n", "5", "-o", tmp_path / "s.jsonl")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert not (tmp_path / "s.jsonl").exists()


def test_ids_can_never_name_a_path_outside_the_output_dir(tmp_path):
    base = (tmp_path / "out" / "audio").resolve()
    for raw in ["../../x", "/etc/passwd", "..", "a/../../b", "C:\\windows\\x", "\x00evil", "~root", "." * 300]:
        target = (base / f"{safe_id(raw)}.wav").resolve()
        assert target.parent == base, raw
