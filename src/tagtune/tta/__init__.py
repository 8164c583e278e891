"""The audio stage: MusicGen generation at scale (resumable, sharded, atomic) and CLAP/FAD evaluation.

Each command is one plain function taking a composed ``tta_inference`` config:
:func:`tagtune.tta.generate.generate` renders a prompts file into ``DIR/audio/*.wav`` plus an
audiofolder ``metadata.jsonl``, :func:`tagtune.tta.merge.merge` combines shard parts (also
:func:`merge_dir` for a bare directory) and :func:`tagtune.tta.evaluate.evaluate` scores a
directory with CLAP and FAD. The functions are not re-exported under the module names, so
``tagtune.tta.generate`` stays the module. Importing this package is cheap: torch and
transformers load inside the functions that need them.
"""

from tagtune.tta.generate import GenerateResult, clip_seed
from tagtune.tta.merge import MergeReport, merge_dir

__all__ = ["GenerateResult", "MergeReport", "clip_seed", "merge_dir"]
