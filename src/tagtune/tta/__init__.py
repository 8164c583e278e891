"""The audio stage: MusicGen generation at scale (resumable, sharded, atomic), CLAP/FAD evaluation, verification.

Each command is one plain function taking its typed config (:mod:`tagtune.tta.config`):
:func:`tagtune.tta.generate.generate` renders a prompts file into ``DIR/audio/*.wav`` plus an
audiofolder ``metadata.jsonl``, :func:`tagtune.tta.merge.merge` combines shard parts (also
:func:`merge_dir` for a bare directory), :func:`tagtune.tta.evaluate.evaluate` scores a directory
with CLAP and FAD and :func:`tagtune.tta.verify.verify` judges each clip's tags from its audio.
Audio backends, checkers and FAD backbones are plugin families (:mod:`tagtune.plugins`). The
functions are not re-exported under the module names, so ``tagtune.tta.generate`` stays the module.
Importing this package is cheap: torch and transformers load inside the functions that need them.
"""

from tagtune.tta.generate import GenerateResult
from tagtune.tta.merge import MergeReport, merge_dir

__all__ = ["GenerateResult", "MergeReport", "merge_dir"]
