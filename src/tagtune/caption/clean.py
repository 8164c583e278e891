"""Turning raw generated text into a caption: special tokens, stop strings, echoes and whitespace.

Generation output is decoded with special tokens kept so that end markers written as plain text
(``<|eot_id|>`` in a model that lacks it as a token, ``</s>``...) can be found and cut here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|answer|caption|description)\s*[:\-]\s*", re.IGNORECASE)
_MARKUP = re.compile(r"<\|[^|<>]{1,40}\|>|\[/?INST\]|</?s>")
_SPACES = re.compile(r"\s+")
_QUOTES = ('"', "'", "\u201c", "\u201d", "`")


def clean_caption(
    text: str,
    end_markers: Iterable[str] = (),
    stop_strings: Iterable[str] = (),
    special_tokens: Iterable[str] = (),
    response_prefix: str = "",
) -> str:
    """Cut ``text`` at the first end marker or stop string and tidy what is left.

    Args:
        text: Decoded new tokens of one generation.
        end_markers: Strings that end an answer (EOS, ``<|eot_id|>``, ``<|im_end|>``...).
        stop_strings: Configured stop strings (``generation.stop_strings``).
        special_tokens: The tokenizer's special tokens; any left in the text are removed.
        response_prefix: A prefix the prompt already supplied; removed if the model repeats it.

    Returns:
        The caption on one line, without surrounding quotes; may be empty.

    Example:
        >>> clean_caption('  "A calm piano piece."<|end|>junk', end_markers=["<|end|>"])
        'A calm piano piece.'
    """
    cut = len(text)
    for marker in [*end_markers, *stop_strings]:
        if marker:
            pos = text.find(marker)
            if pos != -1:
                cut = min(cut, pos)
    text = text[:cut]
    for tok in special_tokens:
        if tok:
            text = text.replace(tok, " ")
    text = _MARKUP.sub(" ", text)
    # Control characters and U+FFFD (a byte-level token cut inside a UTF-8 character) are noise.
    text = "".join(" " if unicodedata.category(ch)[0] == "C" or ch == "\ufffd" else ch for ch in text)
    text = _SPACES.sub(" ", text).strip()
    if response_prefix.strip() and text.lower().startswith(response_prefix.strip().lower()):
        text = text[len(response_prefix.strip()):].strip()
    text = _ROLE_PREFIX.sub("", text)
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    elif text[:1] in _QUOTES and text.count(text[0]) == 1:
        text = text[1:].strip()
    return text
