"""Captions stage: a causal LLM, LoRA-tuned (QLoRA on CUDA), that writes a caption for a tag set.

Each command is one plain function taking its typed config (:mod:`tagtune.caption.config`):
:func:`tagtune.caption.train.finetune` trains and saves an adapter, :func:`tagtune.caption.infer.infer`
captions tag sets into a resumable JSONL with a member of the ``caption_backends`` family
(:mod:`tagtune.caption.backends`), :func:`tagtune.caption.merge.merge_dir` combines the parts of
sharded runs, :func:`tagtune.caption.evaluate.evaluate` scores captions. They are not re-exported
here, so ``tagtune.caption.evaluate`` stays the module. Importing this package is cheap: torch,
transformers, peft and lightning are imported inside the functions that need them.
"""
