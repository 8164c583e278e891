"""Audio stage: `tta generate`'s overhead over bare `model.generate`, batch scaling, memory vs prompt count.

* Overhead: the same batches through `tagtune.tta.generate` (prompt scan, per-clip seeded
  sampling, clip-by-clip EnCodec decode, normalisation, atomic WAV writes, metadata appends) and
  through a bare `model.generate(do_sample=True)` call, alternated, at musicgen-small shape with
  random weights (tiny model when quick).
* Batch scaling: clips/s of the tiny model at batch sizes 1..8 through `generate`.
* Memory: peak RSS of a `tagtune tta generate` subprocess for 10, 100 (and 1000) prompts.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXTS = [
    "a calm ambient piano piece with soft strings", "energetic rock with electric guitar and loud drums",
    "melancholic jazz ballad with saxophone", "happy acoustic folk tune with fiddle",
    "upbeat electronic dance track with synth bass", "dark cinematic orchestral music with choir",
    "relaxed hip hop beat with mellow keys", "funky groove with slap bass and horns",
]



def musicgen_small_shaped(seed: int = 0):
    """facebook/musicgen-small's shapes with random weights (587M parameters, 2.3 GB in fp32), built
    in memory: runs at the real model's speed without downloading it."""
    from tagtune.tta.tiny import build_musicgen

    return build_musicgen(
        text={"vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072, "num_layers": 12, "num_heads": 12},
        codec={"sampling_rate": 32000, "hidden_size": 128, "num_filters": 64, "num_residual_layers": 1,
               "upsampling_ratios": [8, 5, 4, 4], "codebook_size": 2048, "codebook_dim": 128, "target_bandwidths": [2.2],
               "num_lstm_layers": 2, "norm_type": "weight_norm"},
        decoder={"vocab_size": 2048, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                 "ffn_dim": 4096, "num_codebooks": 4, "max_position_embeddings": 2048},
        seed=seed,
    )

def _prompts(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"id": f"b{i:05d}", "caption": f"{TEXTS[i % len(TEXTS)]}, take {i}"}) + "\n")
    return path


def _cfg(out: Path, prompts: Path, **updates):
    from tagtune.config.commands import compose_command
    from tagtune.tta.config import COMMANDS, GENERATE

    base = {"generate.output": str(out), "generate.input": str(prompts), "device": "cpu", "generate.overwrite": True}
    return compose_command(GENERATE, COMMANDS, preset="quick_test", updates={**base, **updates})


def _overhead(work: Path, quick: bool) -> tuple[list[str], float]:
    import torch

    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.backends.musicgen import TransformersMusicgen
    from tagtune.tta.generate import generate

    n_prompts, tokens, reps = 2, 8 if quick else 25, 2 if quick else 3
    if quick:
        cfg0 = _cfg(work / "o", work / "p.jsonl")
        backend, shape = load_backend(cfg0.model, cfg0.device, cfg0.tagmap), "tiny MusicGen (random weights)"
    else:
        start = time.perf_counter()
        model, processor = musicgen_small_shaped()
        build = time.perf_counter() - start
        backend = TransformersMusicgen.wrap(model, processor, "musicgen-small-shaped-random")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        shape = f"musicgen-small shape, random weights ({params:.0f}M parameters, built in {build:.0f} s)"
    prompts = _prompts(work / "overhead.jsonl", n_prompts)
    cfg = _cfg(work / "overhead", prompts, **{"generation.duration": None, "generation.max_new_tokens": tokens,
                                              "generation.batch_size": n_prompts})
    inputs = backend.processor(text=[f"{TEXTS[i]}, take {i}" for i in range(n_prompts)], padding=True, return_tensors="pt")
    gen = cfg.generation

    def bare() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            backend.model.generate(**inputs, do_sample=True, guidance_scale=gen.guidance_scale, top_k=gen.top_k,
                                   temperature=gen.temperature, max_new_tokens=tokens)
        return time.perf_counter() - start

    def ours() -> float:
        start = time.perf_counter()
        res = generate(cfg, backend=backend)
        assert res.generated == n_prompts
        return time.perf_counter() - start

    bare_t, ours_t, bare_cpu, ours_cpu = [], [], [], []
    with torch.inference_mode():  # warm-up (first-call allocations)
        backend.model.generate(**inputs, do_sample=True, max_new_tokens=4)
    load_before = os.getloadavg()[0]
    for _ in range(reps):
        for fn, wall, cpu in ((bare, bare_t, bare_cpu), (ours, ours_t, ours_cpu)):
            c0 = time.process_time()
            wall.append(fn())
            cpu.append(time.process_time() - c0)
    load_after = os.getloadavg()[0]
    b, o = min(bare_t), min(ours_t)
    overhead = o / b - 1
    cpu_overhead = statistics.median(ours_cpu) / statistics.median(bare_cpu) - 1
    lines = [
        "### Overhead of `tta generate` over bare `model.generate`",
        "",
        f"{shape}; {n_prompts} prompts in one batch, {tokens} new tokens, guidance 3.0, top-k 250, fp32 on CPU, "
        f"{torch.get_num_threads()} thread(s); {reps} alternating runs each. The machine is shared (load average "
        f"{load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores), so the fastest run of each "
        "path (least disturbed) is compared, with the process CPU time as a second view.",
        "",
        "| path | fastest wall (s) | median wall (s) | median CPU (s) | ratio (fastest wall) |",
        "| --- | --- | --- | --- | --- |",
        f"| bare `model.generate(do_sample=True)` | {b:.2f} | {statistics.median(bare_t):.2f} | {statistics.median(bare_cpu):.2f} | 1.000 |",
        f"| `tagtune.tta.generate` (scan, seeded sampling, per-clip decode, WAV + metadata) | {o:.2f} | "
        f"{statistics.median(ours_t):.2f} | {statistics.median(ours_cpu):.2f} | {o / b:.3f} |",
        "",
        f"Overhead: **{overhead * 100:+.1f}%** on the fastest runs, {cpu_overhead * 100:+.1f}% in median CPU time "
        f"(target <= 5%). All runs (wall): bare {', '.join(f'{t:.2f}' for t in bare_t)} s; "
        f"generate {', '.join(f'{t:.2f}' for t in ours_t)} s.",
        "",
    ]
    return lines, overhead


def _scaling(work: Path, quick: bool) -> list[str]:
    from tagtune.tta.backends.base import load_backend
    from tagtune.tta.generate import generate

    n = 8
    prompts = _prompts(work / "scaling.jsonl", n)
    cfg0 = _cfg(work / "x", prompts)
    backend = load_backend(cfg0.model, cfg0.device, cfg0.tagmap)
    sizes = [1, 4] if quick else [1, 2, 4, 8]
    reps = 1 if quick else 3
    rows, base = [], None
    for bs in sizes:
        cfg = _cfg(work / f"scale{bs}", prompts, **{"generation.batch_size": bs, "generation.duration": 1.0})
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            generate(cfg, backend=backend)
            times.append(time.perf_counter() - start)
        rate = n / min(times)
        base = base or rate
        rows.append(f"| {bs} | {rate:.2f} | {rate / base:.2f}x |")
    return [
        "### Batch-size scaling",
        "",
        f"Tiny MusicGen (random weights, 16 kHz), {n} prompts of 1 s (53 decoder steps) through `generate`, "
        f"fastest of {reps} run(s) per batch size. On a CPU a batch mostly amortises Python and kernel-launch "
        "overhead per decoding step; on a GPU the gain is larger.",
        "",
        "| batch size | clips/s | vs batch 1 |",
        "| --- | --- | --- |",
        *rows,
        "",
    ]


# The child reports its own peak RSS (VmHWM of its address space) at exit: rusage's ru_maxrss
# would include the benchmark process it was forked from.
_LAUNCH = (
    "import atexit, os, runpy, sys\n"
    "def _hwm():\n"
    "    with open('/proc/self/status') as fh:\n"
    "        line = next(x for x in fh if x.startswith('VmHWM'))\n"
    "    with open(os.environ['BENCH_HWM_FILE'], 'w') as out:\n"
    "        out.write(line.split()[1])\n"
    "atexit.register(_hwm)\n"
    "sys.argv = ['tagtune', *sys.argv[1:]]\n"
    "runpy.run_module('tagtune', run_name='__main__')\n"
)


def _peak_rss_mb(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    hwm = cwd / f"hwm-{time.monotonic_ns()}.txt"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, *args], cwd=cwd, env={**env, "BENCH_HWM_FILE": str(hwm)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"tagtune {' '.join(args)} failed: {proc.stderr[-500:]}")
    return int(hwm.read_text()) / 1024, seconds


def _memory(work: Path, quick: bool) -> list[str]:
    from tagtune.tta.config import TinyMusicgen
    from tagtune.tta.tiny import ensure_tiny_musicgen

    cache = work / "cache"
    ensure_tiny_musicgen(TinyMusicgen(seed=0, sampling_rate=16000, cache_dir=str(cache / "tiny-musicgen")))
    env = {**os.environ, "TAGTUNE_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    counts = [10, 100] if quick else [10, 100, 1000]
    rows, base = [], None
    for n in counts:
        prompts = _prompts(work / f"mem{n}.jsonl", n)
        args = ["tta", "generate", str(prompts), "--preset", "quick_test", "-o", str(work / f"mem{n}"),
                "--duration", "0.1", "--batch-size", "16", "device=cpu"]
        rss, secs = _peak_rss_mb(args, work, env)
        base = base or rss
        wavs = len(list((work / f"mem{n}" / "audio").glob("*.wav")))
        rows.append(f"| {n} | {wavs} | {rss:.0f} | {rss / base:.2f}x | {secs:.1f} |")
    return [
        "### Peak memory vs number of prompts",
        "",
        "Peak RSS (VmHWM) of a whole `tagtune tta generate --preset quick_test` process (tiny model, batch 16, "
        "0.1 s clips). The input is streamed and at most one batch of audio is held, so it stays flat.",
        "",
        "| prompts | clips written | peak RSS (MB) | vs 10 prompts | wall (s) |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]


def run(quick: bool = False) -> str:
    import torch

    torch.set_num_threads(1)  # a shared 2-core machine: one thread is far less disturbed by other load
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TAGTUNE_CACHE_DIR")}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-tta-") as tmp:
            work = Path(tmp)
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TAGTUNE_CACHE_DIR"] = str(work / "cache")
            _prompts(work / "p.jsonl", 2)
            memory = _memory(work, quick)
            scaling = _scaling(work, quick)
            overhead_lines, _ = _overhead(work, quick)
            lines = ["## Audio stage (tta)", "", *overhead_lines, *scaling, *memory]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    lines += [
        "Reference CLAP scores to compare with once real models run on a GPU (ConceptCaps paper, CC-BY-4.0; "
        "MusicGen audio scored with CLAP): captions from the fine-tuned LLM 0.556, base LLM 0.553, zero-shot 0.528, "
        "original MusicCaps captions 0.497, LP-MusicCaps 0.516.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
