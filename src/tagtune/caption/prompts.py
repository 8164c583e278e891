"""Prompts for the caption LLM: a system text and a user template with ``{tags}``, in five formats.

``plain`` is bare text (any causal LM); ``llama3``, ``mistral`` and ``chatml`` write the
instruct markup of those model families by hand; ``chat`` asks the tokenizer to render its own
chat template. Training and inference render prompts through the same functions, so the prompt
the adapter learned on is exactly the prompt it sees when captioning. Loss is taken only on the
answer: :func:`mask_prompt_labels` sets the prompt positions of the labels to -100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tagtune.caption.config import Prompt
from tagtune.errors import ConfigError

IGNORE_INDEX = -100


@dataclass(frozen=True)
class PromptPair:
    """A rendered prompt and the answer text the model should produce after it (training only)."""

    prompt: str
    answer: str


def render_tags(tags: Sequence[str], style: str = "list", categories: Mapping[str, Sequence[str]] | None = None) -> str:
    """The ``{tags}`` text: ``"a, b, c"`` or ``"genre: rock; mood: calm, dreamy"``.

    Args:
        tags: The tag set, in the order it should be shown.
        style: ``list`` or ``categories``.
        categories: ``{category: [tags]}`` for the ``categories`` style; tags not listed in any
            category are shown under ``other``.
    """
    if style != "categories" or not categories:
        return ", ".join(tags)
    placed = {t for ts in categories.values() for t in ts}
    parts = [f"{cat.replace('_', ' ')}: {', '.join(ts)}" for cat, ts in categories.items() if ts]
    rest = [t for t in tags if t not in placed]
    if rest:
        parts.append(f"other: {', '.join(rest)}")
    return "; ".join(parts)


def user_text(prompt: Prompt, tags: Sequence[str], categories: Mapping[str, Sequence[str]] | None = None) -> str:
    """The user turn: ``prompt.user_template`` with ``{tags}`` filled in."""
    return prompt.user_template.replace("{tags}", render_tags(tags, prompt.tag_style, categories))


def _messages(system: str, user: str) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}]


def _answer_end(fmt: str, tokenizer: Any) -> str:
    """The text that closes an answer in each hand-written format."""
    eos = getattr(tokenizer, "eos_token", None) or ""
    return {"plain": eos, "llama3": "<|eot_id|>", "mistral": eos or "</s>", "chatml": "<|im_end|>"}[fmt]


def end_markers(prompt: Prompt, tokenizer: Any) -> list[str]:
    """Strings that end an answer in this format (used as extra stop tokens and by cleaning)."""
    markers = {getattr(tokenizer, "eos_token", None) or ""}
    if prompt.format != "chat":
        markers.add(_answer_end(prompt.format, tokenizer))
    return sorted(m for m in markers if m)


def _bos(tokenizer: Any) -> str:
    return getattr(tokenizer, "bos_token", None) or ""


def render_prompt(prompt: Prompt, tags: Sequence[str], tokenizer: Any,
                  categories: Mapping[str, Sequence[str]] | None = None) -> str:
    """The full prompt text for one tag set, ending where the model's answer starts.

    The text already holds the BOS token where the format wants one: encode it with
    ``add_special_tokens=False``.
    """
    fmt = prompt.format
    system = (prompt.system or "").strip()
    user = user_text(prompt, tags, categories)
    prefix = prompt.response_prefix or ""
    if fmt == "plain":
        head = f"{system}\n\n" if system else ""
        return f"{_bos(tokenizer)}{head}{user}\n{prefix}"
    if fmt == "llama3":
        sys_turn = f"<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>" if system else ""
        return (
            f"<|begin_of_text|>{sys_turn}<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
            f"<|start_header_id|>assistant<|end_header_id|>\n\n{prefix}"
        )
    if fmt == "mistral":
        first = f"{system}\n\n{user}" if system else user
        return f"{_bos(tokenizer) or '<s>'}[INST] {first} [/INST]{prefix}"
    if fmt == "chatml":
        sys_turn = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
        return f"{sys_turn}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{prefix}"
    return _chat_prompt(tokenizer, system, user) + prefix


def _chat_prompt(tokenizer: Any, system: str, user: str) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"prompt.format=chat but the tokenizer of '{getattr(tokenizer, 'name_or_path', '?')}' has no chat template",
            hint="use prompt=default (plain text) or a model-specific prompt (llama, mistral, qwen)",
        )
    try:
        return tokenizer.apply_chat_template(_messages(system, user), tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # some templates refuse a system turn: fold it into the user turn
        if not system:
            raise ConfigError(f"the tokenizer's chat template failed: {str(exc).splitlines()[0]}") from exc
        return tokenizer.apply_chat_template(
            _messages("", f"{system}\n\n{user}"), tokenize=False, add_generation_prompt=True
        )


def render_pair(prompt: Prompt, tags: Sequence[str], caption: str, tokenizer: Any,
                categories: Mapping[str, Sequence[str]] | None = None) -> PromptPair:
    """Prompt and answer for a training example; ``prompt + answer`` is the full training text."""
    text = render_prompt(prompt, tags, tokenizer, categories)
    caption = " ".join(str(caption).split())
    if prompt.format != "chat":
        return PromptPair(text, caption + _answer_end(prompt.format, tokenizer))
    system = (prompt.system or "").strip()
    user = user_text(prompt, tags, categories)
    msgs = _messages(system, user) + [{"role": "assistant", "content": (prompt.response_prefix or "") + caption}]
    try:
        full = tokenizer.apply_chat_template(msgs, tokenize=False)
    except Exception:
        full = tokenizer.apply_chat_template(_messages("", f"{system}\n\n{user}") + msgs[-1:], tokenize=False)
    if full.startswith(text):
        return PromptPair(text, full[len(text):])
    # A template that renders the last turn differently once answered: fall back to prompt + caption + EOS.
    return PromptPair(text, caption + (getattr(tokenizer, "eos_token", None) or ""))


def mask_prompt_labels(input_ids: Sequence[int], prompt_length: int) -> list[int]:
    """Labels for causal-LM training: the prompt's positions are -100, the answer's are the ids."""
    n = max(0, min(int(prompt_length), len(input_ids)))
    return [IGNORE_INDEX] * n + list(input_ids[n:])
