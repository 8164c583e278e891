"""Prompt rendering in every format, and loss masking on the prompt."""

from __future__ import annotations

import pytest

from tagtune.caption.config import COMMANDS, INFER, Prompt
from tagtune.caption.data import Collator, Example, encode_example
from tagtune.caption.prompts import (
    IGNORE_INDEX,
    end_markers,
    mask_prompt_labels,
    render_pair,
    render_prompt,
    render_tags,
)
from tagtune.config.commands import compose_command
from tagtune.errors import ConfigError

TAGS = ["rock", "energetic", "electric guitar", "fast tempo"]
CATS = {"genre": ["rock"], "mood": ["energetic"], "instrument": ["electric guitar"], "tempo": ["fast tempo"]}


def _prompt(fmt: str, **kw) -> Prompt:
    base = {"format": fmt, "tag_style": "list", "system": "SYS TEXT", "user_template": "Tags: {tags}", "response_prefix": ""}
    return Prompt(**{**base, **kw})


@pytest.fixture(scope="module")
def tok(tiny_loaded):
    return tiny_loaded.tokenizer


def test_render_tags_list_and_categories():
    assert render_tags(TAGS) == "rock, energetic, electric guitar, fast tempo"
    assert render_tags(TAGS, "categories", CATS) == (
        "genre: rock; mood: energetic; instrument: electric guitar; tempo: fast tempo"
    )
    assert render_tags(["rock", "vaporwave"], "categories", {"genre": ["rock"]}) == "genre: rock; other: vaporwave"


@pytest.mark.parametrize(
    ("fmt", "starts", "ends"),
    [
        ("plain", "<|bos|>SYS TEXT\n\nTags: rock", "fast tempo\n"),
        ("llama3", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS TEXT<|eot_id|>",
         "<|start_header_id|>assistant<|end_header_id|>\n\n"),
        ("mistral", "<|bos|>[INST] SYS TEXT\n\nTags: rock", " [/INST]"),
        ("chatml", "<|im_start|>system\nSYS TEXT<|im_end|>\n<|im_start|>user\nTags: rock", "<|im_start|>assistant\n"),
        ("chat", "<|bos|><|system|>SYS TEXT<|end|><|user|>Tags: rock", "<|assistant|>"),
    ],
)
def test_every_format_renders_system_user_and_answer_start(tok, fmt, starts, ends):
    text = render_prompt(_prompt(fmt), TAGS, tok, CATS)
    assert text.startswith(starts)
    assert text.endswith(ends)
    assert "electric guitar" in text


def test_chat_format_uses_the_tokenizers_template(tok):
    msgs = [{"role": "system", "content": "SYS TEXT"}, {"role": "user", "content": "Tags: rock"}]
    expected = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert render_prompt(_prompt("chat"), ["rock"], tok) == expected


def test_categories_style_reaches_the_prompt(tok):
    text = render_prompt(_prompt("plain", tag_style="categories"), TAGS, tok, CATS)
    assert "genre: rock; mood: energetic" in text


def test_response_prefix_ends_the_prompt(tok):
    assert render_prompt(_prompt("chatml", response_prefix="Caption:"), TAGS, tok).endswith("assistant\nCaption:")


def test_bad_prompt_configs_are_one_line_errors():
    """Refused when the config is composed, before any model loads."""
    with pytest.raises(ConfigError, match="format") as info:
        compose_command(INFER, COMMANDS, ["prompt.format=yaml"])
    assert info.value.key == "prompt.format"
    with pytest.raises(ConfigError, match=r"\{tags\}") as info:
        compose_command(INFER, COMMANDS, ["prompt.user_template=no placeholder"])
    assert info.value.key == "prompt.user_template"
    with pytest.raises(ConfigError, match=r"\{tags\}"):
        _prompt("plain", user_template="no placeholder")
    with pytest.raises(ConfigError, match="tag_style"):
        compose_command(INFER, COMMANDS, ["prompt.tag_style=cloud"])


@pytest.mark.parametrize("fmt", ["plain", "llama3", "mistral", "chatml", "chat"])
def test_pair_is_prompt_then_caption_then_end_marker(tok, fmt):
    pair = render_pair(_prompt(fmt), TAGS, "  A loud   rock song. ", tok)
    assert pair.prompt == render_prompt(_prompt(fmt), TAGS, tok)
    assert pair.answer.startswith("A loud rock song.")
    assert any(pair.answer.rstrip().endswith(m) for m in end_markers(_prompt(fmt), tok) + ["<|eot_id|>", "<|im_end|>"])


def test_chat_pair_equals_full_template(tok):
    pair = render_pair(_prompt("chat"), TAGS, "A loud rock song.", tok)
    msgs = [
        {"role": "system", "content": "SYS TEXT"},
        {"role": "user", "content": "Tags: rock, energetic, electric guitar, fast tempo"},
        {"role": "assistant", "content": "A loud rock song."},
    ]
    assert pair.prompt + pair.answer == tok.apply_chat_template(msgs, tokenize=False)


def test_mask_prompt_labels():
    assert mask_prompt_labels([5, 6, 7, 8, 9], 3) == [IGNORE_INDEX] * 3 + [8, 9]
    assert mask_prompt_labels([5, 6], 10) == [IGNORE_INDEX] * 2


def test_encoded_example_masks_exactly_the_prompt_tokens(tok):
    pair = render_pair(_prompt("chat"), TAGS, "A loud rock song.", tok)
    ex = encode_example(tok, pair.prompt, pair.answer, max_length=512)
    n_prompt = len(tok(pair.prompt, add_special_tokens=False)["input_ids"])
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert ex.labels[n_prompt:] == ex.input_ids[n_prompt:]
    assert all(label != IGNORE_INDEX for label in ex.labels[n_prompt:])
    assert tok.decode(ex.input_ids[n_prompt:]) == pair.answer
    assert ex.input_ids[-1] == tok.eos_token_id  # the model learns to stop


def test_long_examples_are_cut_or_skipped(tok):
    pair = render_pair(_prompt("chat"), TAGS, "A loud rock song " * 40, tok)
    n_prompt = len(tok(pair.prompt, add_special_tokens=False)["input_ids"])
    cut = encode_example(tok, pair.prompt, pair.answer, max_length=n_prompt + 5)
    assert len(cut.input_ids) == n_prompt + 5
    assert encode_example(tok, pair.prompt, pair.answer, max_length=n_prompt) is None


def test_collator_right_pads_and_masks_padding():
    batch = Collator(pad_token_id=0)([Example([4, 5, 6], [-100, 5, 6]), Example([7, 8], [-100, 8])])
    assert batch["input_ids"].tolist() == [[4, 5, 6], [7, 8, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 5, 6], [-100, 8, -100]]
