"""Captions stage: a causal LLM, LoRA-tuned (QLoRA on CUDA), that writes a caption for a tag set.

``finetune(cfg)`` trains and saves an adapter, ``infer(cfg)`` captions tag sets into a resumable
JSONL, ``evaluate(cfg)`` scores captions. Importing this package is cheap: torch, transformers,
peft and lightning are imported inside the functions that need them.
"""

from tagtune.caption.evaluate import evaluate
from tagtune.caption.infer import infer
from tagtune.caption.train import finetune

__all__ = ["evaluate", "finetune", "infer"]
