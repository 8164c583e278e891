"""End-to-end runs of the real ``tagtune caption`` CLI on the tiny model."""

from __future__ import annotations

import json
import signal
import time

import pytest

from helpers import (
    count_lines,
    error_line,
    read_jsonl,
    run_cli,
    run_tagtune,
    signal_when,
    tagtune_argv,
    write_jsonl,
)
from tagtune.caption.config import FINETUNE
from tagtune.files.readers import resources_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """One real ``caption finetune --preset quick_test`` run, shared by the tests below."""
    out = tmp_path_factory.mktemp("lora") / "adapter"
    proc = run_tagtune("caption", "finetune", "--preset", "quick_test", "-o", out, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc


def test_finetune_writes_adapter_and_loss_drops(finetuned):
    out, proc = finetuned
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "config.yaml", "metrics.json"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["train_loss_last"] < m["train_loss_first"] - 0.3
    assert m["train_loss_epochs"][-1] < m["train_loss_epochs"][0]
    assert m["val_loss"] is not None and m["val_perplexity"] == pytest.approx(2.718281828 ** m["val_loss"], rel=1e-3)
    assert len(m["sample_captions"]) == 3 and all("caption" in s for s in m["sample_captions"])
    assert "train loss" in proc.stdout


def test_adapter_weights_trained_and_checkpoint_holds_adapter_only(finetuned):
    import torch
    from safetensors.torch import load_file

    out, _ = finetuned
    weights = load_file(out / "adapter_model.safetensors")
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: gradients reached it
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["state_dict"] and all("lora_" in k for k in ckpt["state_dict"])


def test_resume_from_last_checkpoint(finetuned, caption_cfg, tmp_path):
    from tagtune.caption.train import finetune

    out, _ = finetuned
    first = json.loads((out / "metrics.json").read_text())
    cfg = caption_cfg(FINETUNE, f"finetune.resume={out / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3",
                      "data.limit=80", "callbacks.progress_bar.enabled=false")
    res = finetune(cfg)
    assert res.epochs == 3 and res.steps > first["steps"]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["steps"] == res.steps


def test_finetune_again_into_a_finished_adapter_dir_is_refused(finetuned):
    out, _ = finetuned
    weights = (out / "adapter_model.safetensors").read_bytes()
    code, _, err = run_cli("caption", "finetune", "--preset", "quick_test", "-o", out)
    assert code == 2
    error_line(err, str(out), "already holds a trained adapter", "finetune.resume=")
    assert (out / "adapter_model.safetensors").read_bytes() == weights


def test_infer_with_adapter_one_caption_per_id(finetuned, tagtune_cli, tmp_path):
    out, _ = finetuned
    rows = [{"id": f"t{i}", "tags": tags} for i, tags in enumerate(
        [["rock", "energetic"], ["jazz", "calm", "piano"], ["ambient"], ["folk", "violin", "slow tempo"], ["techno"]])]
    src = write_jsonl(tmp_path / "tags.jsonl", rows)
    caps = tmp_path / "caps.jsonl"
    proc = tagtune_cli("caption", "infer", str(src), "--preset", "quick_test", "--adapter", str(out), "-o", str(caps))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = read_jsonl(caps)
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    assert all(g["caption"].strip() for g in got)
    assert all(g["provenance"]["caption"]["adapter"] == str(out) for g in got)
    assert "captions/s" in proc.stdout + proc.stderr
    assert (tmp_path / "caps.jsonl.config.yaml").read_text().count(str(out)) == 1


def _cli_ok(*args: object) -> str:
    """Run the CLI in-process, expect exit 0, return stdout (stderr goes to the assertion message)."""
    code, out, err = run_cli(*args)
    assert code == 0, err[-2000:]
    return out


def test_infer_with_no_arguments_but_the_preset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    out = _cli_ok("caption", "infer", "--preset", "quick_test", "--limit", "5")
    outs = list(tmp_path.glob("outputs/caption_inference/*/captions.jsonl"))
    assert len(outs) == 1 and len(outs[0].read_text().splitlines()) == 5
    assert (outs[0].parent / "config.yaml").is_file()
    assert "wrote 5 captions" in out


def test_sigkill_mid_run_then_rerun_gives_one_line_per_id(tmp_path):
    rows = read_jsonl(resources_dir() / "demo_tags.jsonl")[:40]
    src = write_jsonl(tmp_path / "tags.jsonl", rows)
    caps = tmp_path / "caps.jsonl"
    args = ["caption", "infer", str(src), "--preset", "quick_test", "-o", str(caps),
            "--batch-size", "1", "generation.max_new_tokens=32", "generation.min_new_tokens=32"]
    code = signal_when(tagtune_argv(*args), lambda: count_lines(caps) >= 2, timeout=120)
    assert code == -signal.SIGKILL, "finished before it could be killed: make the run longer"
    written = count_lines(caps)
    assert 2 <= written < len(rows)
    rerun = run_tagtune(*args, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    got = [r["id"] for r in read_jsonl(caps, complete=True)]  # every line parses: no torn line survived
    assert sorted(got) == sorted(r["id"] for r in rows) and len(got) == len(set(got))
    assert f"{written} already there" in " ".join(rerun.stdout.split())


def _cli_error(*args: object) -> str:
    """Run the CLI in-process, expect exit 2 and exactly one error line (notes may precede it)."""
    return run_cli(*args).error(only=False)


def test_missing_or_broken_adapter_is_one_line(tmp_path):
    msg = _cli_error("caption", "infer", "--preset", "quick_test", "--adapter", str(tmp_path / "nope"), "--limit", "1")
    assert "adapter directory" in msg and "nope" in msg
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    assert "corrupt adapter config" in _cli_error("caption", "infer", "--preset", "quick_test", "--adapter", str(broken))
    (broken / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (broken / "adapter_model.bin").write_bytes(b"pickle")
    assert "pickled" in _cli_error("caption", "infer", "--preset", "quick_test", "--adapter", str(broken))
    (broken / "adapter_model.safetensors").write_bytes(b"garbage")
    msg = _cli_error("caption", "infer", "--preset", "quick_test", "--adapter", str(broken),
                     "-o", str(tmp_path / "c.jsonl"), "--limit", "1")
    assert "cannot load adapter" in msg


def test_quantization_required_without_cuda_exits_2(tmp_path):
    msg = _cli_error("caption", "infer", "--preset", "quick_test", "-o", str(tmp_path / "c.jsonl"), "--limit", "1",
                     "model.quantization.enabled=true", "model.quantization.required=true")
    assert "CUDA is not available" in msg and "quantization.required" in msg


def test_quantized_config_on_cpu_says_so_in_one_line(tmp_path):
    code, _, err = run_cli("caption", "infer", "--preset", "quick_test", "-o", str(tmp_path / "c.jsonl"), "--limit", "2",
                           "model.quantization.enabled=true")
    assert code == 0, err
    notes = [line for line in err.splitlines() if "unquantized" in line]
    assert len(notes) == 1 and "CUDA is not available" in notes[0] and "'tiny'" in notes[0]
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 2


def test_default_model_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    msg = _cli_error("caption", "infer", "-o", str(tmp_path / "c.jsonl"), "--limit", "1")
    assert "meta-llama/Llama-3.1-8B-Instruct" in msg and "offline" in msg and "--preset quick_test" in msg


def test_output_equal_to_the_input_is_refused(tmp_path):
    src = write_jsonl(tmp_path / "tags.jsonl", read_jsonl(resources_dir() / "demo_tags.jsonl")[:3])
    before = src.read_bytes()
    msg = _cli_error("caption", "infer", src, "--preset", "quick_test", "-o", src)
    assert f"output {src} is the input file" in msg
    assert src.read_bytes() == before


def test_default_model_without_network_fails_fast_in_a_real_process(tagtune_cli, tmp_path):
    env = {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    start = time.monotonic()
    proc = tagtune_cli("caption", "infer", "-o", str(tmp_path / "c.jsonl"), "--limit", "1", env=env, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "meta-llama/Llama-3.1-8B-Instruct" in lines[0] and "cannot be reached" in lines[0]
    assert "--preset quick_test" in lines[0]
    assert elapsed < 40  # without the reachability check, Hub retries alone take ~45 s


def test_override_in_the_input_position_and_show_config(monkeypatch, tmp_path):
    import yaml

    monkeypatch.chdir(tmp_path)
    shown = yaml.safe_load(_cli_ok("caption", "infer", "generation.max_new_tokens=7", "--preset", "quick_test",
                                   "--batch-size", "3", "--show-config"))
    assert shown["generation"]["max_new_tokens"] == 7 and shown["generation"]["batch_size"] == 3
    assert shown["infer"]["input"] == "pkg:demo_tags.jsonl"  # no INPUT: the data section's file (the demo sets)
    _cli_ok("caption", "infer", "generation.max_new_tokens=6", "--preset", "quick_test", "--limit", "2", "-o", "c.jsonl")
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 2
    out = _cli_ok("caption", "finetune", "--preset", "quick_test", "--seed", "5", "-o", "ft", "--show-config")
    assert yaml.safe_load(out)["seed"] == 5 and yaml.safe_load(out)["finetune"]["output"] == "ft"
    assert not (tmp_path / "ft").exists()
