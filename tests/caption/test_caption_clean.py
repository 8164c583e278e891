"""Caption cleaning: end markers, stop strings, special tokens, echoes, whitespace."""

from __future__ import annotations

from tagtune.caption.clean import clean_caption


def test_cut_at_end_marker_and_stop_string():
    assert clean_caption("A calm piece.<|eot_id|>Next turn", end_markers=["<|eot_id|>"]) == "A calm piece."
    assert clean_caption("A calm piece.\n\nUser: more", stop_strings=["\n\n"]) == "A calm piece."
    assert clean_caption("first</s>second<|end|>", end_markers=["<|end|>", "</s>"]) == "first"


def test_special_tokens_markup_and_whitespace_go():
    text = "<|assistant|>  A  lively\tfolk\n tune <pad> with fiddle "
    assert clean_caption(text, special_tokens=["<pad>"]) == "A lively folk tune with fiddle"
    assert clean_caption("[INST] A jazz trio [/INST]") == "A jazz trio"


def test_role_prefix_quotes_and_echoed_prefix():
    assert clean_caption('Assistant: "A sad ballad."') == "A sad ballad."
    assert clean_caption("Caption: A sad ballad.", response_prefix="Caption:") == "A sad ballad."
    assert clean_caption("\u201cA sad ballad.\u201d") == "A sad ballad."
    assert clean_caption('"A sad ballad.') == "A sad ballad."


def test_control_characters_and_broken_bytes_are_dropped():
    assert clean_caption("A\x14 warm \ufffdsynth pad") == "A warm synth pad"


def test_empty_stays_empty():
    assert clean_caption("<|end|>", end_markers=["<|end|>"]) == ""
    assert clean_caption("   ") == ""
