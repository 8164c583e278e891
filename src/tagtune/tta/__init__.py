"""The audio stage: MusicGen generation at scale (resumable, sharded, atomic) and CLAP/FAD evaluation.

``generate(cfg)`` renders a prompts file into ``DIR/audio/*.wav`` plus an audiofolder
``metadata.jsonl``; ``merge(cfg)`` / ``merge_dir(DIR)`` combine shard parts; ``evaluate(cfg)``
scores a directory with CLAP and FAD. Importing this package is cheap: torch and transformers
load inside the functions that need them.
"""

from tagtune.tta.evaluate import evaluate
from tagtune.tta.generate import GenerateResult, clip_seed, generate
from tagtune.tta.merge import MergeReport, merge, merge_dir

__all__ = ["GenerateResult", "MergeReport", "clip_seed", "evaluate", "generate", "merge", "merge_dir"]
