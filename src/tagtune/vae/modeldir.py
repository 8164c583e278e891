"""The self-contained VAE model directory: write it after training, read it for sampling.

Layout::

    DIR/
      model.safetensors   # weights + the aggregate posterior (prior.mu, prior.logvar); the
                          # architecture and taxonomy fingerprint sit in the file's metadata
      taxonomy.json       # the tag order the weights were trained on
      config.yaml         # the composed training config
      metrics.json        # losses, epochs, time, dataset report
      checkpoints/        # Lightning checkpoints (last.ckpt resumes training)
      metrics/            # CSV logger output

Only safetensors is read back (no pickle). Every way a directory can be unusable (missing,
not a directory, no weights, corrupt weights, missing or mismatched taxonomy) is one
:class:`~tagtune.errors.ModelNotFoundError` line naming the path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tagtune.errors import ModelNotFoundError, TagtuneError
from tagtune.files.resumable import atomic_path
from tagtune.files.runs import file_sha256
from tagtune.records.taxonomy import Taxonomy

if TYPE_CHECKING:
    import torch

    from tagtune.vae.model import TagVAE

WEIGHTS = "model.safetensors"
TAXONOMY = "taxonomy.json"
FORMAT = "tagtune-vae/1"
_TRAIN_HINT = "train one with `tagtune vae train -o DIR` and give DIR as the model (sample.model, evaluate.model)"


@dataclass
class LoadedModel:
    """A model ready for sampling: network (eval mode), taxonomy and aggregate posterior."""

    path: Path
    model: TagVAE
    taxonomy: Taxonomy
    prior_mu: torch.Tensor
    prior_logvar: torch.Tensor
    metadata: dict[str, Any]
    fingerprint: str = ""  # sha256 of the weights file (first 16 hex digits): names the model in provenance


def save_model_dir(
    run_dir: Path, model: TagVAE, taxonomy: Taxonomy, prior_mu: torch.Tensor, prior_logvar: torch.Tensor,
) -> Path:
    """Write ``model.safetensors`` and ``taxonomy.json`` into ``run_dir`` (atomically)."""
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["prior.mu"] = prior_mu.detach().cpu().float().contiguous()
    tensors["prior.logvar"] = prior_logvar.detach().cpu().float().contiguous()
    metadata = {
        "format": FORMAT,
        "architecture": json.dumps(model.arch.to_dict(), sort_keys=True),
        "taxonomy_sha256": taxonomy.fingerprint(),
    }
    with atomic_path(run_dir / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _sort_metadata(tmp)
    taxonomy.save(run_dir / TAXONOMY)
    return run_dir


def _sort_metadata(path: Path) -> None:
    """Rewrite the safetensors header with its metadata keys sorted, in place.

    safetensors writes the metadata in hash-map order, which changes from process to process, so
    the same weights gave different bytes (and a different fingerprint in every sampled row's
    provenance). The rewritten header has the same keys, values and length; readers see no change.
    """
    with open(path, "r+b") as fh:
        size = int.from_bytes(fh.read(8), "little")
        raw = fh.read(size)
        header = json.loads(raw)
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if len(text) != len(raw.rstrip(b" ")):  # not the library's compact JSON: leave the file as it is
            return
        fh.seek(8)
        fh.write(text.ljust(size))


def _check_dir(path: Path) -> Path:
    if not path.exists():
        raise ModelNotFoundError(f"model directory {path} does not exist", hint=_TRAIN_HINT)
    if not path.is_dir():
        raise ModelNotFoundError(f"{path} is not a directory (expected a VAE model directory)", hint=_TRAIN_HINT)
    if not (path / WEIGHTS).is_file():
        raise ModelNotFoundError(f"{path} has no {WEIGHTS}: not a trained VAE model directory", hint=_TRAIN_HINT)
    if not (path / TAXONOMY).is_file():
        raise ModelNotFoundError(f"{path} has no {TAXONOMY}: the model directory is incomplete", hint=_TRAIN_HINT)
    return path


def read_taxonomy(path: str | Path) -> Taxonomy:
    """The taxonomy saved in a model directory."""
    path = _check_dir(Path(path).expanduser())
    return Taxonomy.load(path / TAXONOMY)


def check_taxonomy(model_taxonomy: Taxonomy, other: Taxonomy, model_path: Path, other_source: str) -> None:
    """Refuse a taxonomy that encodes differently from the model's (one line saying how)."""
    if model_taxonomy.fingerprint() == other.fingerprint():
        return
    a, b = model_taxonomy.tags, other.tags
    if len(a) != len(b):
        how = f"{len(a)} tags vs {len(b)}"
    elif set(a) != set(b):
        extra = sorted(set(b) - set(a))[:3]
        how = f"tags not in the model: {', '.join(extra)}"
    else:
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        how = f"same tags in a different order (position {i}: '{a[i]}' vs '{b[i]}')"
    raise ModelNotFoundError(
        f"taxonomy {other_source} does not match the model's ({model_path / TAXONOMY}): {how}",
        hint="use the taxonomy the model was trained with, or retrain",
    )


def load_model_dir(path: str | Path, taxonomy: Taxonomy | None = None) -> LoadedModel:
    """Read a model directory written by :func:`save_model_dir`.

    Args:
        path: The directory.
        taxonomy: When given, it must encode exactly like the directory's taxonomy; its rules
            (exclusive groups, category counts) replace the directory's.

    Raises:
        ModelNotFoundError: Missing/incomplete/corrupt directory or taxonomy mismatch.
    """
    from safetensors import safe_open

    from tagtune.vae.model import Architecture, TagVAE

    path = _check_dir(Path(path).expanduser())
    weights = path / WEIGHTS
    try:
        tax = Taxonomy.load(path / TAXONOMY)
    except TagtuneError as exc:
        raise ModelNotFoundError(f"{path / TAXONOMY} is unreadable ({exc})", hint=_TRAIN_HINT) from exc
    try:
        with safe_open(str(weights), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as exc:  # safetensors raises its own error types for truncated/garbage files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelNotFoundError(f"{weights} is corrupt or not a safetensors file ({first})", hint="retrain or restore the file") from exc
    if meta.get("format") != FORMAT or "architecture" not in meta:
        raise ModelNotFoundError(f"{weights} is not a tagtune VAE weights file (format {meta.get('format')!r})", hint=_TRAIN_HINT)
    if meta.get("taxonomy_sha256") != tax.fingerprint():
        raise ModelNotFoundError(f"{path / TAXONOMY} does not match the taxonomy the weights were trained with", hint="restore the original taxonomy.json")
    try:
        arch = Architecture.from_dict(json.loads(meta["architecture"]))
        model = TagVAE(arch)
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(state, strict=True)
        prior_mu, prior_logvar = tensors["prior.mu"], tensors["prior.logvar"]
    except (KeyError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelNotFoundError(f"{weights} does not hold a complete VAE ({first})", hint="retrain or restore the file") from exc
    if arch.num_tags != len(tax):
        raise ModelNotFoundError(f"{weights} has {arch.num_tags} tag outputs but {path / TAXONOMY} lists {len(tax)} tags")
    if taxonomy is not None:
        check_taxonomy(tax, taxonomy, path, taxonomy.source)
        tax = tax.with_rules(taxonomy.rules)  # the given file's rules (same tags) apply to this run
    model.eval()
    return LoadedModel(path, model, tax, prior_mu.float(), prior_logvar.float(), meta, file_sha256(weights)[:16])
