"""GPU check: tagtune's own commands on locally built models, one pass/fail/figure table in under 10 minutes.

    python benchmarks/gpu_check.py             # on one CUDA GPU: real shapes, writes $OUT/gpu_check.{json,md}
    python benchmarks/gpu_check.py --cpu       # the same commands on the CPU with tiny sizes (the test runs this)

Nothing is downloaded: the caption LLM is a Llama-architecture network with Llama 3's vocabulary size
(128 256; the locally trained tiny tokenizer padded with reserved tokens), MusicGen has musicgen-small's
shapes with half its decoder layers (T5-base text encoder, 32 kHz EnCodec, 4 x 2048 codebooks), CLAP and
the FAD backbone are tagtune's tiny offline models. Weights are random: the figures measure cost, not
quality. Each check is a real ``tagtune`` command run in this process (the executor's shards run as
submitit processes), in this order: ``caption finetune`` in 4-bit QLoRA and with a plain LoRA,
``caption infer --adapter``, ``tta generate`` at batch 16 x 30 s, at the conceptcaps preset's settings and
compiled, ``tta verify``, ``tta evaluate`` and ``pipeline run executor=slurm executor.slurm.cluster=local``.
CUDA-only checks report "skipped: needs CUDA" on the CPU; checks that would start after ``--budget``
seconds report "skipped: time budget". Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SIZES: dict[str, dict[str, Any]] = {
    "real": {"llm": dict(hidden_size=1024, intermediate_size=3584, num_hidden_layers=4, num_attention_heads=8,
                         num_key_value_heads=2, max_position_embeddings=8192, rope_theta=500000.0),
             "vocab": 128256, "musicgen": "small-shaped", "pairs": 128, "captions": 64, "new_tokens": 64,
             "clips": 16, "batch": 16, "seconds": 30.0, "budget": 540, "pipeline": []},
    "tiny": {"llm": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=512),
             "vocab": 4096, "musicgen": "tiny", "pairs": 24, "captions": 4, "new_tokens": 12,
             "clips": 2, "batch": 2, "seconds": 1.0, "budget": 900, "pipeline": ["stages=[vae,caption]"]},
}
# musicgen-small: T5-base text encoder, 32 kHz EnCodec (4 codebooks of 2048), decoder 1024 wide, 16 heads, 24 layers
MUSICGEN_SMALL_SHAPED = {
    "text": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    "codec": dict(sampling_rate=32000, num_filters=64, codebook_size=2048, upsampling_ratios=[8, 5, 4, 4],
                  target_bandwidths=[2.2], num_lstm_layers=2),
    "decoder": dict(vocab_size=2048, hidden_size=1024, num_hidden_layers=12, num_attention_heads=16, ffn_dim=4096,
                    num_codebooks=4, max_position_embeddings=2048),
}
OFFLINE = ["evaluate.clap_model=tiny", "evaluate.fad.backbones=[tiny]"]


@dataclass
class Check:
    """One row: a tagtune command, whether it needs CUDA, and the figures read from what it wrote."""

    name: str
    argv: Callable[[], list[str]]
    cuda_only: bool = False
    figures: Callable[[float], dict[str, Any]] = lambda seconds: {}
    result: dict[str, Any] = field(default_factory=dict)


def build_llm(folder: Path, size: dict[str, Any], cuda: bool) -> Path:
    """A Llama-architecture model with random weights and the tiny tokenizer padded to ``size['vocab']``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from tagtune.caption.tiny import build_tokenizer

    tok = build_tokenizer(1024)
    tok.add_tokens([f"<|reserved_{i}|>" for i in range(size["vocab"] - len(tok))])
    config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False, **size["llm"])
    torch.manual_seed(0)
    with torch.device("cuda" if cuda else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if cuda else torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def build_musicgen(folder: Path, size: dict[str, Any]) -> str:
    """musicgen-small's shapes with half its decoder layers, saved for ``model.name``; ``tiny`` at tiny size."""
    if size["musicgen"] == "tiny":
        return "tiny"
    from tagtune.tta.tiny import build_musicgen as build

    shapes = MUSICGEN_SMALL_SHAPED
    model, processor = build(shapes["text"], shapes["codec"], shapes["decoder"], seed=0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def run_tagtune(argv: list[str], log: Path) -> tuple[int, str]:
    """``tagtune ARGV`` in this process (tagtune.cli.main), output to ``log``: (exit code, last error line)."""
    from tagtune.cli import main

    code = 0
    with open(log, "w", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    lines = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or "Error" in ln]
    return code, (errors or lines or [""])[-1][:300]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class GpuCheck:
    """The checks of one run, with the models they share and the folder they write into."""

    def __init__(self, work: Path, size_name: str, cuda: bool):
        self.work, self.size, self.cuda = work, SIZES[size_name], cuda
        self.llm = self.musicgen = ""
        self.adapter = work / ("qlora" if cuda else "lora")
        self.captions = work / "captions.jsonl"

    def llm_args(self, quantized: bool) -> list[str]:
        return ["model=caption/tiny", f"model.name={self.llm}", "model.threads=null", "model.dtype=bfloat16",
                f"model.quantization.enabled={str(quantized).lower()}", "model.quantization.required=true",
                "model.quantization.bnb_4bit_compute_dtype=bfloat16", "prompt=chat"]

    def finetune(self, out: Path, quantized: bool) -> list[str]:
        return ["caption", "finetune", "-o", out, *self.llm_args(quantized), "lora=best", f"data.limit={self.size['pairs']}",
                "data.batch_size=8", "data.max_length=256", "trainer.max_epochs=1", "finetune.sample_captions=2",
                "logger=none"]

    def generate(self, out: str, *extra: str) -> list[str]:
        s = self.size
        model = ["model=tta/tiny"] if self.musicgen == "tiny" else ["model=tta/musicgen-small", f"model.name={self.musicgen}"]
        return ["tta", "generate", self.captions, "-o", self.work / out, "--limit", s["clips"], "--batch-size",
                s["batch"], *model, OFFLINE[0], *extra]

    def checks(self) -> list[Check]:
        s, w = self.size, self.work
        duration = f"generation.duration={s['seconds']}"
        return [
            Check("caption finetune, 4-bit QLoRA (lora=best)", lambda: self.finetune(w / "qlora", True), cuda_only=True,
                  figures=lambda sec: self._train_figures(w / "qlora", sec)),
            Check("caption finetune, LoRA (lora=best)", lambda: self.finetune(w / "lora", False),
                  figures=lambda sec: self._train_figures(w / "lora", sec)),
            Check("caption infer --adapter", lambda: ["caption", "infer", "--adapter", self._adapter(), "-o", self.captions,
                                                      "--limit", s["captions"], "--batch-size", 16,
                                                      f"generation.max_new_tokens={s['new_tokens']}",
                                                      *self.llm_args(self.cuda)],
                  figures=self._caption_figures),
            Check(f"tta generate, batch {s['batch']} x {s['seconds']:g} s", lambda: self.generate("audio", duration),
                  figures=lambda sec: self._audio_figures(w / "audio", sec)),
            Check("tta generate --preset conceptcaps", lambda: self.generate("audio_cc", "--preset", "conceptcaps",
                                                                             *([duration] if s["seconds"] < 30 else [])),
                  figures=lambda sec: self._audio_figures(w / "audio_cc", sec)),
            Check("tta generate --preset conceptcaps model.compile=true",
                  lambda: self.generate("audio_compiled", "--preset", "conceptcaps", "model.compile=true"), cuda_only=True,
                  figures=lambda sec: self._audio_figures(w / "audio_compiled", sec)),
            Check("tta verify", lambda: ["tta", "verify", w / "audio_cc", *OFFLINE[:1], "-o", w / "verify.json"],
                  figures=lambda sec: {"clips/s": round(s["clips"] / sec, 2)}),
            Check("tta evaluate", lambda: ["tta", "evaluate", w / "audio", "--reference", w / "audio_cc", *OFFLINE,
                                           "-o", w / "evaluate.json"],
                  figures=lambda sec: {"clips/s": round(2 * s["clips"] / sec, 2)}),
            Check("pipeline run executor=slurm executor.slurm.cluster=local",
                  lambda: ["pipeline", "run", "--preset", "quick_test", "-o", w / "pipeline", "executor=slurm",
                           "executor.slurm.cluster=local", "num_items=4", "executor.shards.caption=1",
                           "executor.shards.tta=2", "executor.shards.verify=1", *s["pipeline"]],
                  figures=lambda sec: {"rows": len(_jsonl(w / "pipeline" / "caption" / "captions.jsonl"))}),
        ]

    def _adapter(self) -> Path:
        return self.adapter if (self.adapter / "adapter_model.safetensors").is_file() else self.work / "lora"

    def _train_figures(self, run: Path, seconds: float) -> dict[str, Any]:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
        return {"steps": metrics["steps"], "examples/s": round(metrics["train_examples"] / seconds, 1),
                "quantized": metrics["quantized"], "trainable M params": round(metrics["trainable_parameters"] / 1e6, 1)}

    def _caption_figures(self, seconds: float) -> dict[str, Any]:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.llm)
        rows = _jsonl(self.captions)
        tokens = sum(len(tok(r["caption"], add_special_tokens=False)["input_ids"]) for r in rows)
        return {"captions": len(rows), "tokens/s": round(tokens / seconds, 1)}

    def _audio_figures(self, folder: Path, seconds: float) -> dict[str, Any]:
        rows = _jsonl(folder / "metadata.jsonl")
        audio = sum(float(r["duration"]) for r in rows)
        return {"clips": len(rows), "clips per GPU-hour": round(len(rows) / seconds * 3600),
                "real-time factor": round(audio / seconds, 2)}


def run_check(check: Check, gpu: GpuCheck, logs: Path, deadline: float) -> dict[str, Any]:
    """Run one check: its status, seconds, figures and peak GPU memory."""
    import torch

    row: dict[str, Any] = {"check": check.name, "status": "skipped", "reason": "", "seconds": None, "figures": {}}
    if check.cuda_only and not gpu.cuda:
        row["reason"] = "needs CUDA"
        return row
    if time.perf_counter() > deadline:
        row["reason"] = "time budget"
        return row
    argv = check.argv()
    row["command"] = "tagtune " + " ".join(str(a) for a in argv)
    if gpu.cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    code, last = run_tagtune(argv, logs / f"{len(list(logs.iterdir())):02d}.log")
    row["seconds"] = round(time.perf_counter() - start, 1)
    if gpu.cuda:
        row["figures"]["peak GPU GiB"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    if code != 0:
        row.update(status="fail", reason=f"exit {code}: {last}")
    else:
        try:
            row["figures"].update(check.figures(max(row["seconds"], 1e-3)))
            row["status"] = "pass"
        except Exception as exc:  # the command ran but wrote something unexpected
            row.update(status="fail", reason=f"figures: {type(exc).__name__}: {exc}"[:300])
    gc.collect()
    if gpu.cuda:
        torch.cuda.empty_cache()
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| check | result | seconds | figures |", "| --- | --- | --- | --- |"]
    for r in rows:
        result = r["status"] + (f": {r['reason']}" if r["reason"] else "")
        figures = ", ".join(f"{k} {v}" for k, v in r["figures"].items())
        lines.append(f"| {r['check']} | {result.replace('|', '/')} | {r['seconds'] if r['seconds'] is not None else '-'} "
                     f"| {figures or '-'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="run on the CPU (tiny sizes unless --size real)")
    ap.add_argument("--size", choices=sorted(SIZES), help="model and run sizes (default: real on CUDA, tiny with --cpu)")
    ap.add_argument("--work", type=Path, help="working folder (default: a new temporary folder)")
    ap.add_argument("--json", type=Path, help="where the JSON goes (default: $OUT/gpu_check.json, else WORK/gpu_check.json)")
    ap.add_argument("--budget", type=float, help="seconds after which no new check starts (default: per size)")
    args = ap.parse_args(argv)
    if args.cpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch loads: every command sees a CPU-only machine
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print("error: no CUDA GPU here (hint: --cpu runs the same commands on the CPU)", file=sys.stderr)
        return 2
    size_name = args.size or ("real" if cuda else "tiny")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TAGTUNE_CACHE_DIR", str(work / "cache"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(name, "1")
    started = time.perf_counter()
    gpu = GpuCheck(work, size_name, cuda)
    deadline = started + (args.budget or gpu.size["budget"])
    gpu.llm = str(build_llm(work / "llm", gpu.size, cuda))
    gpu.musicgen = build_musicgen(work / "musicgen", gpu.size)
    rows = [{"check": "build models (Llama-architecture LLM, MusicGen)", "status": "pass", "reason": "",
             "seconds": round(time.perf_counter() - started, 1), "figures": {"vocab": gpu.size["vocab"]}}]
    for check in gpu.checks():
        rows.append(run_check(check, gpu, logs, deadline))
        print(f"[{time.perf_counter() - started:.0f} s] {check.name}: {rows[-1]['status']} {rows[-1]['reason']}",
              file=sys.stderr, flush=True)
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    report = {"device": device, "torch": torch.__version__, "size": size_name, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
              "seconds": round(time.perf_counter() - started, 1), "work": str(work), "rows": rows}
    text = f"GPU check on {device} ({size_name} sizes), {report['seconds']:.0f} s\n\n{table(rows)}\n"
    print(text)
    out = args.json or (Path(os.environ["OUT"]) / "gpu_check.json" if os.environ.get("OUT") else work / "gpu_check.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    return 1 if any(r["status"] == "fail" for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
