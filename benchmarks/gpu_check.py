"""One-shot GPU check (finishes within ~8 minutes on one GPU): the real shapes, random weights.

    python benchmarks/gpu_check.py                 # on a CUDA machine: prints Markdown, writes $OUT/gpu_check.md
    python benchmarks/gpu_check.py --tiny          # the same code path with tiny shapes (CPU smoke test)

Records, each in its own section (a failing section is reported and the others still run):

1. 4-bit QLoRA at the Llama-3.1-8B shape: load time, GPU memory, a few LoRA training steps (r 32 on
   all seven projections, as `lora=best`): seconds per step and tokens per second;
2. caption generation throughput at that shape, with and without the adapter (batch 16, 64 new tokens);
3. MusicGen small and large shapes in fp16: real-time factor (seconds of audio per second) for 10 s clips;
4. CLAP (the laion/clap-htsat-unfused shape) scoring throughput: clips of 10 s per second.

Random weights make no music and no sense, but every step costs what the real model costs. The
weights are written to a local folder once and loaded through `from_pretrained`, so the 4-bit path is
the one users take (bitsandbytes quantizes while loading).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

LLAMA_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0)
LLAMA_TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512)
MUSICGEN = {"small": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096),
            "large": dict(hidden_size=2048, num_hidden_layers=48, num_attention_heads=32, ffn_dim=8192)}
MUSICGEN_TINY = {"tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128)}


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gib() -> str:
    import torch

    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if torch.cuda.is_available() else "-"


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    _sync()
    start = time.perf_counter()
    value = fn()
    _sync()
    return value, time.perf_counter() - start


def _llama(tmp: Path, tiny: bool) -> tuple[list[str], Any, Any]:
    """Random Llama weights saved once, loaded in 4 bit; returns report lines, the model and its device."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig

    cfg = LlamaConfig(**(LLAMA_TINY if tiny else LLAMA_8B), torch_dtype="bfloat16")
    folder = tmp / "llama"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    _, save_s = _timed(lambda m=model: m.save_pretrained(folder, safe_serialization=True))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        loaded, load_s = _timed(lambda: AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant,
                                                                              device_map={"": 0}))
        what = "NF4 4-bit, double quantization, bf16 compute"
    else:  # the smoke test: bitsandbytes' 4-bit path needs CUDA
        loaded, load_s = _timed(lambda: AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.bfloat16))
        what = "bf16 (CPU smoke test: no 4-bit)"
    params = sum(p.numel() for p in loaded.parameters())
    lines = [f"- weights: {params / 1e9:.2f} B parameters stored ({what}); saved in {save_s:.0f} s, "
             f"loaded in {load_s:.1f} s; GPU memory after load {_peak_gib()}"]
    return lines, loaded, device


def check_qlora(tmp: Path, tiny: bool, out: list[str]) -> Any:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    out += ["## 1. QLoRA at the Llama-3.1-8B shape", ""]
    lines, model, device = _llama(tmp, tiny)
    out += lines
    if device == "cuda":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    lora = LoraConfig(r=32, lora_alpha=8, lora_dropout=0.26, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=6e-5)
    batch, seq = (4, 256) if not tiny else (2, 32)
    ids = torch.randint(0, peft_model.config.vocab_size, (batch, seq), device=device)

    def step() -> float:
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    step()  # warm-up
    times = [_timed(step)[1] for _ in range(4)]
    per = sorted(times)[len(times) // 2]
    out += [f"- LoRA r 32, alpha 8 on all 7 projections: {trainable / 1e6:.1f} M trainable parameters",
            f"- training step (batch {batch} x {seq} tokens, gradient checkpointing): {per:.2f} s median of 4, "
            f"{batch * seq / per:.0f} tokens/s; peak GPU memory {_peak_gib()}", ""]
    return peft_model


def check_generation(peft_model: Any, tiny: bool, out: list[str]) -> None:
    import torch

    out += ["## 2. Caption generation at that shape", ""]
    device = next(peft_model.parameters()).device
    batch, new = (16, 64) if not tiny else (2, 8)
    prompt = torch.randint(0, peft_model.config.vocab_size, (batch, 96 if not tiny else 8), device=device)
    peft_model.eval()
    for label, ctx in (("with the LoRA adapter", contextlib.nullcontext()), ("adapter disabled", peft_model.disable_adapter())):
        with ctx, torch.inference_mode():
            peft_model.generate(input_ids=prompt, max_new_tokens=2, min_new_tokens=2, do_sample=False, pad_token_id=0)
            _, sec = _timed(lambda: peft_model.generate(input_ids=prompt, max_new_tokens=new, min_new_tokens=new,
                                                         do_sample=True, top_k=50, top_p=0.97, pad_token_id=0))
        out.append(f"- {label}: batch {batch}, {new} new tokens in {sec:.2f} s = {batch * new / sec:.0f} tokens/s "
                   f"({batch / sec * 60:.0f} captions/min)")
    out.append("")


def _musicgen(size: dict[str, int]) -> Any:
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        T5Config,
    )

    text = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)  # t5-base
    codec = EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=64, codebook_size=2048,
                          upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], normalize=False, num_lstm_layers=2)
    dec = MusicgenDecoderConfig(vocab_size=2048, num_codebooks=4, max_position_embeddings=2048, **size)
    return MusicgenForConditionalGeneration(MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(),
                                                           decoder=dec.to_dict()))


def check_musicgen(tiny: bool, out: list[str]) -> None:
    import torch

    out += ["## 3. MusicGen shapes, fp16", ""]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.float32
    seconds, batch = (10.0, 4) if not tiny else (0.5, 2)
    steps = int(seconds * 50) + 3
    for name, size in (MUSICGEN_TINY if tiny else MUSICGEN).items():
        torch.manual_seed(0)
        model = _musicgen(size).to(device=device, dtype=dtype).eval()
        params = sum(p.numel() for p in model.parameters())
        ids = torch.randint(0, 32000, (batch, 24), device=device)
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=True, guidance_scale=3.0)
            _, sec = _timed(lambda m=model, i=ids, k=mask: m.generate(input_ids=i, attention_mask=k, max_new_tokens=steps,
                                                                      do_sample=True, guidance_scale=3.0))
        out.append(f"- {name} shape ({params / 1e9:.2f} B parameters): batch {batch} x {seconds:g} s with guidance "
                   f"in {sec:.1f} s: real-time factor {batch * seconds / sec:.2f} (audio seconds per second)")
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
    out.append("")


def check_clap(tiny: bool, out: list[str]) -> None:
    import numpy as np
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    out += ["## 4. CLAP scoring (the laion/clap-htsat-unfused shape)", ""]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = ClapModel(ClapConfig()).to(device).eval()
    fe = ClapFeatureExtractor(truncation="rand_trunc")  # 48 kHz, 10 s windows; unfused, as htsat-unfused
    n, secs = (64, 10.0) if not tiny else (4, 2.0)
    clips = [np.random.default_rng(i).standard_normal(int(48000 * secs)).astype(np.float32) * 0.1 for i in range(n)]
    feats, fe_s = _timed(lambda: fe(clips, sampling_rate=48000, return_tensors="pt"))
    x = feats["input_features"].to(device)
    with torch.inference_mode():
        model.get_audio_features(input_features=x[:2])
        _, model_s = _timed(lambda: [model.get_audio_features(input_features=x[i:i + 16]) for i in range(0, n, 16)])
    out += [f"- {n} clips of {secs:g} s: features {fe_s / n * 1000:.1f} ms/clip (CPU), audio tower {model_s / n * 1000:.2f} "
            f"ms/clip ({device}), {n / (fe_s + model_s):.0f} clips/s end to end", ""]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on any device (a smoke test of this script)")
    args = ap.parse_args()
    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("error: gpu_check needs a CUDA GPU (hint: --tiny runs the same code path with tiny shapes)", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    out = ["# GPU check", "", f"- {time.strftime('%Y-%m-%d %H:%M %Z')}; GPU: {gpu}; torch {torch.__version__}"
           + (" (tiny shapes: a smoke test, not a measurement)" if args.tiny else ""), ""]
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=os.environ.get("TMPDIR")))
    def section(name: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # report and go on: one failing section must not hide the others
            out.extend([f"- **{name} failed**: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", ""])
            traceback.print_exc()
            return None
        finally:
            print(f"[{time.perf_counter() - started:.0f} s] {name} done", file=sys.stderr, flush=True)

    try:
        peft_model = section("qlora", lambda: check_qlora(tmp, args.tiny, out))
        if peft_model is not None:
            section("generation", lambda m=peft_model: check_generation(m, args.tiny, out))
        del peft_model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        section("musicgen", lambda: check_musicgen(args.tiny, out))
        section("clap", lambda: check_clap(args.tiny, out))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.append(f"Total {time.perf_counter() - started:.0f} s.")
    text = "\n".join(out) + "\n"
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
