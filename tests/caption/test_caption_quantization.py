"""4-bit or a clear refusal: a config that asks for 4-bit loading where CUDA or bitsandbytes' CUDA
kernels are missing stops in one line (exit 2) before any data or weights load, unless the fallback
is allowed (``model.quantization.required=false``); the packaged LLM options require it."""

from __future__ import annotations

import dataclasses
import sys
import types

import pytest

from helpers import run_cli
from tagtune.caption.config import COMMANDS, INFER, llm_model
from tagtune.caption.model import bitsandbytes_problem, quantization_plan
from tagtune.config.commands import compose_command
from tagtune.errors import DependencyError

NO_KERNELS = "bitsandbytes has no CUDA kernels for this torch build"


def _llama(required: bool | None = None):
    model = llm_model(compose_command(INFER, COMMANDS, preset="conceptcaps").model)
    if required is None:
        return model
    return dataclasses.replace(model, quantization=dataclasses.replace(model.quantization, required=required))


def test_packaged_llm_options_require_4_bit():
    for option in ("llama_3.1_8b_instruct", "mistral_7b_instruct", "qwen2.5_7b_instruct", "mixtral_8x7b_instruct"):
        q = compose_command(INFER, COMMANDS, [f"model=caption/{option}"]).model.quantization
        assert q.enabled and q.required, option


def test_4_bit_without_cuda_is_refused_naming_the_key():
    with pytest.raises(DependencyError, match="CUDA is not available") as info:
        quantization_plan(_llama(), cuda=False)
    assert "model.quantization.required=false" in info.value.hint


def test_4_bit_without_bitsandbytes_kernels_is_refused():
    with pytest.raises(DependencyError, match=NO_KERNELS):
        quantization_plan(_llama(), cuda=True, problem=NO_KERNELS)
    assert quantization_plan(_llama(), cuda=True, problem=None) == (True, None)


def test_allowed_fallback_loads_unquantized_with_one_notice():
    quantize, note = quantization_plan(_llama(required=False), cuda=True, problem=NO_KERNELS)
    assert not quantize and NO_KERNELS in note and "unquantized" in note and "\n" not in note


def _fake_cextension(monkeypatch, loaded: bool) -> None:
    module = types.ModuleType("bitsandbytes.cextension")

    class ErrorHandlerMockBNBNativeLibrary:  # the stand-in bitsandbytes puts in place of a library that did not load
        pass

    module.ErrorHandlerMockBNBNativeLibrary = ErrorHandlerMockBNBNativeLibrary
    module.lib = object() if loaded else ErrorHandlerMockBNBNativeLibrary()
    module.BNB_BACKEND = "CUDA"
    monkeypatch.setitem(sys.modules, "bitsandbytes.cextension", module)


def test_bitsandbytes_problem_reads_its_native_library(monkeypatch):
    _fake_cextension(monkeypatch, loaded=False)
    assert bitsandbytes_problem() == NO_KERNELS
    _fake_cextension(monkeypatch, loaded=True)
    assert bitsandbytes_problem() is None
    monkeypatch.setitem(sys.modules, "bitsandbytes.cextension", None)  # import raises ImportError
    assert bitsandbytes_problem() == "bitsandbytes is not installed"


def test_conceptcaps_finetune_on_cpu_stops_in_one_line_before_writing(tmp_path):
    """The preset's 8B model would otherwise load in float32 on the CPU: hours per batch."""
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the preset loads in 4 bit here")
    out = tmp_path / "lora"
    msg = run_cli("caption", "finetune", "--preset", "conceptcaps", "-o", out).error("4 bit", "CUDA is not available")
    assert "model.quantization.required=false" in msg
    assert not out.exists()
