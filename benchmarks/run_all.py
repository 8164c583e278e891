"""Run every benchmark and rewrite docs/benchmarks.md (machine, versions, date, then each section).

    python benchmarks/run_all.py                 # all benchmarks, rewrite the doc
    python benchmarks/run_all.py --only vae cli  # rerun some; the other sections are kept
    python benchmarks/run_all.py --quick --print # smoke run, print only
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
NAMES = ["cli", "vae", "concepts", "caption", "tta", "verify", "audio_facts", "export", "report", "executors", "demo", "gpu"]
START, END = "<!-- bench:{} -->", "<!-- /bench:{} -->"


def _machine() -> str:
    import torch

    versions = {}
    for mod in ("torch", "transformers", "lightning", "peft", "numpy"):
        try:
            versions[mod] = importlib.import_module(mod).__version__
        except Exception:
            versions[mod] = "-"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except Exception:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"- last written: {time.strftime('%Y-%m-%d %H:%M %Z')} (`--only` reruns some sections; each says when it was measured)\n"
        f"- machine: {cpu}, {os.cpu_count()} cores{mem}, GPU: {gpu}\n"
        f"- torch threads: {torch.get_num_threads()}\n"
        f"- Python {platform.python_version()}, " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n"
    )


def _existing_sections() -> dict[str, str]:
    if not DOC.exists():
        return {}
    text = DOC.read_text(encoding="utf-8")
    out = {}
    for name in NAMES:
        m = re.search(re.escape(START.format(name)) + r"\n(.*?)" + re.escape(END.format(name)), text, re.S)
        if m:
            out[name] = m.group(1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help=f"subset of {NAMES}")
    ap.add_argument("--quick", action="store_true", help="smoke run (seconds per bench)")
    ap.add_argument("--print", dest="print_only", action="store_true", help="print instead of writing the doc")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    chosen = args.only or NAMES
    sections = _existing_sections()
    failed = []
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            mod = importlib.import_module(f"bench_{name}")
            text = mod.run(quick=args.quick).rstrip()
            took = time.perf_counter() - start
            sections[name] = text + f"\n\n_(section measured {time.strftime('%Y-%m-%d')} in {took:.0f} s)_\n"
        except Exception:
            traceback.print_exc()
            failed.append(name)
            sections[name] = f"## {name}\n\nThis benchmark failed on the last run; see the console output.\n"
    body = [
        "# Benchmarks",
        "",
        "Written by `python benchmarks/run_all.py` (`make bench`); do not edit by hand. Every ratio is",
        "measured side by side in one run on the machine below.",
        "",
        _machine(),
    ]
    for name in NAMES:
        if name in sections:
            body += [START.format(name), sections[name].rstrip() + "\n", END.format(name), ""]
    text = "\n".join(body).rstrip() + "\n"
    if args.print_only:
        print(text)
    else:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
