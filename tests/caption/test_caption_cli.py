"""End-to-end runs of the real ``tagtune caption`` CLI on the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tagtune.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    """One real ``caption finetune --preset quick_test`` run, shared by the tests below."""
    out = tmp_path_factory.mktemp("lora") / "adapter"
    proc = subprocess.run(
        [sys.executable, "-m", "tagtune", "caption", "finetune", "--preset", "quick_test", "-o", str(out)],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )
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
    cfg = caption_cfg("caption_fine_tuning", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=3",
                      "data.limit=80", "callbacks.progress_bar.enabled=false")
    res = finetune(cfg)
    assert res.epochs == 3 and res.steps > first["steps"]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["steps"] == res.steps


def test_infer_with_adapter_one_caption_per_id(finetuned, tagtune_cli, tmp_path):
    out, _ = finetuned
    src = tmp_path / "tags.jsonl"
    rows = [{"id": f"t{i}", "tags": tags} for i, tags in enumerate(
        [["rock", "energetic"], ["jazz", "calm", "piano"], ["ambient"], ["folk", "violin", "slow tempo"], ["techno"]])]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    caps = tmp_path / "caps.jsonl"
    proc = tagtune_cli("caption", "infer", str(src), "--preset", "quick_test", "--adapter", str(out), "-o", str(caps))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = [json.loads(line) for line in caps.read_text().splitlines()]
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    assert all(g["caption"].strip() for g in got)
    assert "captions/s" in proc.stdout + proc.stderr
    assert (tmp_path / "caps.jsonl.config.yaml").read_text().count(str(out)) == 1


def _cli_ok(*args: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 0


def test_infer_with_no_arguments_but_the_preset(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _cli_ok("caption", "infer", "--preset", "quick_test", "--limit", "5")
    outs = list(tmp_path.glob("outputs/caption_inference/*/captions.jsonl"))
    assert len(outs) == 1 and len(outs[0].read_text().splitlines()) == 5
    assert (outs[0].parent / "config.yaml").is_file()
    assert "wrote 5 captions" in capsys.readouterr().out


def test_sigkill_mid_run_then_rerun_gives_one_line_per_id(tmp_path):
    src = tmp_path / "tags.jsonl"
    demo = Path(__file__).resolve().parents[2] / "src" / "tagtune" / "resources" / "demo_tags.jsonl"
    rows = [json.loads(line) for line in demo.read_text().splitlines()][:40]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    caps = tmp_path / "caps.jsonl"
    args = [sys.executable, "-m", "tagtune", "caption", "infer", str(src), "--preset", "quick_test", "-o", str(caps),
            "--batch-size", "1", "generation.max_new_tokens=32", "generation.min_new_tokens=32"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if caps.exists() and caps.read_bytes().count(b"\n") >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "finished before it could be killed: make the run longer"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    written = caps.read_bytes().count(b"\n")
    assert 2 <= written < len(rows)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    lines = caps.read_text(encoding="utf-8").splitlines()
    got = [json.loads(line)["id"] for line in lines]  # every line parses: no torn line survived
    assert sorted(got) == sorted(r["id"] for r in rows) and len(got) == len(set(got))
    assert f"{written}" in rerun.stdout or "already there" in rerun.stdout


def _cli_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1
    return err[0]


def test_missing_or_broken_adapter_is_one_line(capsys, tmp_path):
    msg = _cli_error(capsys, "caption", "infer", "--preset", "quick_test", "--adapter", str(tmp_path / "nope"), "--limit", "1")
    assert "adapter directory" in msg and "nope" in msg
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{not json")
    assert "corrupt adapter config" in _cli_error(capsys, "caption", "infer", "--preset", "quick_test", "--adapter", str(broken))
    (broken / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (broken / "adapter_model.bin").write_bytes(b"pickle")
    assert "pickled" in _cli_error(capsys, "caption", "infer", "--preset", "quick_test", "--adapter", str(broken))
    (broken / "adapter_model.safetensors").write_bytes(b"garbage")
    msg = _cli_error(capsys, "caption", "infer", "--preset", "quick_test", "--adapter", str(broken),
                     "-o", str(tmp_path / "c.jsonl"), "--limit", "1")
    assert "cannot load adapter" in msg


def test_quantization_required_without_cuda_exits_2(capsys, tmp_path):
    msg = _cli_error(capsys, "caption", "infer", "--preset", "quick_test", "-o", str(tmp_path / "c.jsonl"), "--limit", "1",
                     "model.quantization.enabled=true", "model.quantization.required=true")
    assert "CUDA is not available" in msg and "quantization.required" in msg


def test_quantized_config_on_cpu_says_so_in_one_line(capsys, tmp_path):
    _cli_ok("caption", "infer", "--preset", "quick_test", "-o", str(tmp_path / "c.jsonl"), "--limit", "2",
            "model.quantization.enabled=true")
    notes = [line for line in capsys.readouterr().err.splitlines() if "unquantized" in line]
    assert len(notes) == 1 and "CUDA is not available" in notes[0] and "'tiny'" in notes[0]
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 2


def test_default_model_offline_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    msg = _cli_error(capsys, "caption", "infer", "-o", str(tmp_path / "c.jsonl"), "--limit", "1")
    assert "meta-llama/Llama-3.1-8B-Instruct" in msg and "offline" in msg and "--preset quick_test" in msg


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


def test_override_in_the_input_position_and_show_config(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _cli_ok("caption", "infer", "generation.max_new_tokens=7", "--preset", "quick_test", "--batch-size", "3", "--show-config")
    shown = capsys.readouterr().out
    assert "max_new_tokens: 7" in shown and "batch_size: 3" in shown and "input: null" in shown
    _cli_ok("caption", "infer", "generation.max_new_tokens=6", "--preset", "quick_test", "--limit", "2", "-o", "c.jsonl")
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 2
    _cli_ok("caption", "finetune", "--preset", "quick_test", "--seed", "5", "-o", "ft", "--show-config")
    assert "seed: 5" in capsys.readouterr().out and not (tmp_path / "ft").exists()
