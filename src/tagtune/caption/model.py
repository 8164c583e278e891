"""Loading the caption LLM: base model and tokenizer, 4-bit quantization, LoRA adapters.

``model.name`` is a Hub id, a local directory, or ``tiny`` (built locally, see :mod:`.tiny`).
Loading tries the local cache first and only then the Hub, after a quick reachability check, so
a missing model fails in about a second instead of after a minute of network retries. 4-bit nf4
quantization through bitsandbytes is used when ``model.quantization.enabled`` and CUDA and
bitsandbytes' CUDA kernels are available; otherwise the run stops in one line when
``model.quantization.required`` is set (the packaged LLM options), or loads unquantized with a
one-line notice when the fallback is allowed (``required: false``). ``trust_remote_code`` follows the config (off by
default). Adapters are PEFT LoRA directories (``adapter_config.json`` + safetensors weights).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagtune.caption.config import LlmModel, Quantization
from tagtune.caption.tiny import ensure_tiny_model
from tagtune.errors import ConfigError, DependencyError, ModelNotFoundError
from tagtune.files.sharding import local_device_index
from tagtune.models.device import cuda_available, pick_device, pick_dtype
from tagtune.models.hub import load_pretrained, quiet_transformers, resolved_revision

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


@dataclass
class LoadedModel:
    """A model ready to generate or train, with what was decided while loading it."""

    model: Any
    tokenizer: Any
    name: str
    path: str
    device: str
    quantized: bool = False
    adapter: str | None = None
    notices: list[str] = field(default_factory=list)
    revision: str = ""  # the commit loaded from the Hub, or local:<fingerprint>


def resolve_model_path(model: LlmModel) -> str:
    """``tiny`` -> the built tiny model's directory; otherwise ``model.name`` (with ``~`` expanded)."""
    if model.name == "tiny":
        if model.tiny is None:
            raise ConfigError("model.tiny: missing: model.name=tiny builds the tiny model from it", key="model.tiny",
                              hint="start from model=caption/tiny")
        return str(ensure_tiny_model(model.tiny))
    local = Path(model.name).expanduser()
    return str(local) if local.exists() else model.name


def bitsandbytes_problem() -> str | None:
    """Why bitsandbytes cannot quantize on this CUDA machine, or None when it can.

    A missing package, or one whose native CUDA library did not load (no binary for this CUDA
    version, missing runtime libraries): bitsandbytes then imports fine and fails at the first
    4-bit matrix product, long after the model has loaded.
    """
    import importlib

    try:
        cext = importlib.import_module("bitsandbytes.cextension")
    except ImportError:
        return "bitsandbytes is not installed"
    except Exception as exc:  # a broken install raises anything at import time
        return f"bitsandbytes does not load ({type(exc).__name__})"
    mock = getattr(cext, "ErrorHandlerMockBNBNativeLibrary", None)
    if mock is not None and isinstance(getattr(cext, "lib", None), mock):
        return f"bitsandbytes has no {getattr(cext, 'BNB_BACKEND', 'CUDA')} kernels for this torch build"
    return None


def quantization_plan(model: LlmModel, cuda: bool, problem: str | None = None) -> tuple[bool, str | None]:
    """Whether to load in 4 bit, and the notice to print when asked-for quantization falls back.

    Args:
        cuda: CUDA is available.
        problem: Why bitsandbytes cannot quantize here (:func:`bitsandbytes_problem`), None when it can.

    Raises:
        DependencyError: 4-bit is asked for, cannot be done here, and ``model.quantization.required``
            is set (the packaged LLM options set it: an 8B model silently loaded in float32 on a CPU
            is hours per batch, not a fallback anyone wants).
    """
    q = model.quantization
    if not q.enabled:
        return False, None
    if cuda and problem is None:
        return True, None
    why = "CUDA is not available" if not cuda else problem
    if q.required:
        raise DependencyError(
            f"model.quantization.required=true but {why}: '{model.name}' cannot load in 4 bit here",
            hint="run on a CUDA machine with bitsandbytes, or allow the fallback with model.quantization.required=false "
                 "(loads unquantized: float32 on CPU), or set model.quantization.enabled=false",
        )
    return False, (
        f"{why}, so '{model.name}' runs unquantized ({'float32 on CPU' if not cuda else 'in model.dtype'}; "
        "model.quantization.required=false allowed the fallback; set model.quantization.enabled=false to silence this)"
    )


def check_quantization(model: LlmModel) -> tuple[bool, str | None]:
    """:func:`quantization_plan` on this machine. Called before the weights load (``caption finetune``: before
    anything is read or written), so a preset that asks for 4-bit where it cannot be done stops in one line
    before the slow part."""
    if not model.quantization.enabled:
        return False, None
    cuda = cuda_available()
    return quantization_plan(model, cuda, bitsandbytes_problem() if cuda else None)


def _bnb_config(q: Quantization) -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=q.load_in_4bit,
        bnb_4bit_quant_type=q.bnb_4bit_quant_type,
        bnb_4bit_use_double_quant=q.bnb_4bit_use_double_quant,
        bnb_4bit_compute_dtype=getattr(torch, q.bnb_4bit_compute_dtype),
    )


def load_tokenizer(model: LlmModel, path: str, padding_side: str = "left") -> Any:
    """The tokenizer, with a pad token (EOS when the model has none) and the given padding side."""
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"trust_remote_code": model.trust_remote_code}
    if model.revision:
        kwargs["revision"] = model.revision
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, path, "model", **kwargs)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_base_model(model: LlmModel, path: str, for_training: bool = False,
                    device: str = "auto") -> tuple[Any, str, bool, list[str]]:
    """The base causal LM on ``device`` in the right dtype, quantized when planned.

    Returns:
        ``(model, device, quantized, notices)``.
    """
    from transformers import AutoModelForCausalLM

    quiet_transformers()
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
    cuda = cuda_available()
    quantize, note = check_quantization(model)
    notices = [note] if note else []
    device = pick_device(device)
    kwargs: dict[str, Any] = {"dtype": pick_dtype(model.dtype, device), "trust_remote_code": model.trust_remote_code}
    if model.revision:
        kwargs["revision"] = model.revision
    if model.attn_implementation:
        kwargs["attn_implementation"] = model.attn_implementation
    if quantize:
        kwargs["quantization_config"] = _bnb_config(model.quantization)
        kwargs["device_map"] = {"": local_device_index()}
    elif cuda and model.device_map and not for_training:
        kwargs["device_map"] = model.device_map
    net = load_pretrained(AutoModelForCausalLM.from_pretrained, path, "model", **kwargs)
    if "device_map" not in kwargs and not for_training:
        net.to(device)
    if not quantize and "device_map" in kwargs:
        device = str(next(net.parameters()).device)
    return net, device, quantize, notices


def check_adapter_dir(adapter_dir: str | Path) -> Path:
    """Validate a LoRA adapter directory before loading it, with one-line errors.

    Raises:
        ModelNotFoundError: Missing directory or files, unreadable config, pickled weights only.
    """
    path = Path(adapter_dir).expanduser()
    hint = ("set model.checkpoint_dir to the finetune.output directory of `tagtune caption finetune` "
            "(it holds adapter_config.json and adapter_model.safetensors)")
    if not path.exists():
        raise ModelNotFoundError(f"adapter directory {path} does not exist", hint=hint)
    if not path.is_dir():
        raise ModelNotFoundError(f"adapter {path} is not a directory", hint=hint)
    cfg_file = path / ADAPTER_CONFIG
    if not cfg_file.is_file():
        raise ModelNotFoundError(f"{path} is not a LoRA adapter: no {ADAPTER_CONFIG}", hint=hint)
    try:
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelNotFoundError(f"{cfg_file}: corrupt adapter config ({exc})", hint="re-run the fine-tuning that wrote it") from exc
    if not isinstance(data, dict) or "peft_type" not in data:
        raise ModelNotFoundError(f"{cfg_file}: not a PEFT adapter config (no peft_type)", hint=hint)
    if not (path / ADAPTER_WEIGHTS).is_file():
        extra = " (only a pickled adapter_model.bin, which tagtune does not load)" if (path / "adapter_model.bin").exists() else ""
        raise ModelNotFoundError(f"{path} has no {ADAPTER_WEIGHTS}{extra}", hint=hint)
    return path


def attach_adapter(model: Any, adapter_dir: str | Path, trainable: bool = False) -> Any:
    """Wrap ``model`` with the LoRA adapter saved in ``adapter_dir``.

    Raises:
        ModelNotFoundError: The adapter is missing, corrupt or does not fit this base model.
    """
    from peft import PeftModel

    path = check_adapter_dir(adapter_dir)
    try:
        return PeftModel.from_pretrained(model, str(path), is_trainable=trainable)
    except Exception as exc:  # safetensors header errors, size mismatches, unknown modules
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ModelNotFoundError(
            f"cannot load adapter {path}: {first}",
            hint="was it trained on this base model (model.name)? re-run the fine-tuning that wrote it if it is damaged",
        ) from exc


def adapter_base_model(adapter_dir: str | Path) -> str | None:
    """The base model an adapter was trained on, as recorded in its ``adapter_config.json``."""
    try:
        data = json.loads((Path(adapter_dir).expanduser() / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    return str(base) if base else None


def adapter_tokenizer_dir(adapter_dir: str | Path | None) -> Path | None:
    """The tokenizer saved beside an adapter, if any (fine-tuning saves it there)."""
    if not adapter_dir:
        return None
    path = Path(adapter_dir).expanduser()
    return path if (path / "tokenizer_config.json").is_file() else None


def load_for_inference(model: LlmModel, device: str = "auto") -> LoadedModel:
    """Tokenizer, base model and (when ``model.checkpoint_dir`` is set) the LoRA adapter, in eval mode.

    What was decided on the way (quantization skipped, an adapter trained on another base) is in
    ``notices``, for the caller to report once the load has succeeded.
    """
    adapter = model.checkpoint_dir
    if adapter:
        check_adapter_dir(adapter)  # fail before the slow base-model load
    path = resolve_model_path(model)
    extra = []
    if adapter:
        base = adapter_base_model(adapter)
        if base and base not in (path, model.name):
            extra.append(f"adapter {adapter} was trained on '{base}' but model.name is '{model.name}'")
    tok_dir = adapter_tokenizer_dir(adapter)
    tokenizer = load_tokenizer(model, str(tok_dir) if tok_dir else path, padding_side="left")
    net, device, quantized, notices = load_base_model(model, path, device=device)
    revision = resolved_revision(net, path, model.revision)
    if adapter:
        net = attach_adapter(net, adapter)
        if not quantized:
            net.to(device)
    net.eval()
    return LoadedModel(net, tokenizer, model.name, path, device, quantized, adapter or None, extra + notices, revision)
