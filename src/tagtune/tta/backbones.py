"""Embedding backbones for FAD: VGGish (the standard, MusicGen's tables), PANN, EnCodec, and a tiny one.

Each backbone turns a mono clip into frame embeddings ``(frames, dim)``; FAD fits Gaussians to the
frames of all clips of each side (as fadtk and frechet-audio-distance do). Weights are read from
local files only, never fetched and never run as code from a model repository:

* ``vggish``: the VGGish network (its published layout; the last ReLU dropped, no PCA, as the FAD
  libraries use it) on 0.96 s log-mel patches at 16 kHz, weights ``vggish-10086976.pth`` (the file
  torchvggish, fadtk and frechet-audio-distance download) loaded tensors-only;
* ``pann``: frechet-audio-distance's PANN Cnn14 (16 kHz) with its ``Cnn14_16k_mAP=0.438.pth``;
* ``encodec``: the encoder of ``facebook/encodec_24khz`` through transformers (local cache);
* ``passt``: PaSST-S on AudioSet (:mod:`tagtune.tta.passt`), one embedding per 10 s window; also the
  classifier of KLD (``evaluate.kld.classifier``);
* ``tiny``: the encoder of the tiny MusicGen's EnCodec (random weights, offline): it keeps the FAD
  code path running in tests and CI, and with a seeded random label head the KLD one; its values
  mean nothing.

``evaluate.fad.backbones`` names members of :data:`BACKBONES`: these built-ins, a
``package.module:Class`` or an entry point of ``tagtune.backbones`` (:mod:`tagtune.plugins`). A
backbone whose weights or packages are absent is reported unavailable in one line; the others
still run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from tagtune.errors import ConfigError, ModelNotFoundError
from tagtune.models.hub import load_pretrained, resolved_revision
from tagtune.plugins import Family, load
from tagtune.tta.audio import resample
from tagtune.tta.config import Fad
from tagtune.tta.tiny import ensure_tiny_musicgen


class Backbone(Protocol):
    """Turns a mono clip into frame embeddings for FAD.

    Members are classes built as ``Member(fad)`` from the typed ``evaluate.fad`` section (they read
    their weights' location there) and loading the weights in the constructor. ``name`` and
    ``revision`` are recorded in the summary and the manifest.
    """

    name: str
    revision: str

    def frames(self, audio: Any, rate: int) -> Any:
        """``(frames, dim)`` float64 embeddings of mono float audio at ``rate`` Hz."""
        ...


class Classifier(Backbone, Protocol):
    """A backbone that also classifies, for KLD (``evaluate.kld.classifier``): ``passt``, ``tiny``."""

    def probabilities(self, audio: Any, rate: int) -> Any:
        """The clip's label distribution ``(labels,)`` summing to 1, or None when the clip is too short."""
        ...


BACKBONES = Family(
    name="backbones",
    what="FAD backbone",
    protocol=Backbone,
    builtins={"vggish": "tagtune.tta.backbones:VGGish", "pann": "tagtune.tta.backbones:Pann",
              "encodec": "tagtune.tta.backbones:Encodec", "passt": "tagtune.tta.passt:Passt",
              "tiny": "tagtune.tta.backbones:TinyEncodec"},
    key="evaluate.fad.backbones",
)


def torch_hub_checkpoint(name: str) -> Path:
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")).expanduser()
    return home / "hub" / "checkpoints" / name


class VGGish:
    """VGGish frame embeddings (128-d, one per 0.96 s) from a local state dict."""

    name, sample_rate = "vggish", 16000

    def __init__(self, fad: Fad):
        import torch

        weights = fad.vggish_weights
        path = Path(weights).expanduser() if weights else torch_hub_checkpoint("vggish-10086976.pth")
        if not path.is_file():
            raise ModelNotFoundError(f"VGGish weights not found at {path}",
                                     hint="download vggish-10086976.pth once (torchvggish v0.1) and set evaluate.fad.vggish_weights")
        self.net = _vggish_net()
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.eval()
        self.revision = f"file:{path.name}"

    def frames(self, audio: Any, rate: int) -> Any:
        import torch

        patches = vggish_patches(resample(audio, rate, self.sample_rate))
        if len(patches) == 0:
            return patches.reshape(0, 128)
        with torch.inference_mode():
            x = self.net.features(torch.from_numpy(patches)).permute(0, 2, 3, 1).reshape(len(patches), -1)
            return self.net.embeddings[:-1](x).double().numpy()  # no final ReLU, no PCA: what FAD libraries use


def _vggish_net() -> Any:
    from torch import nn

    layers: list[Any] = []
    channels = 1
    for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if width == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    net = nn.Module()
    net.features = nn.Sequential(*layers)
    net.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True),
                                   nn.Linear(4096, 128), nn.ReLU(True))
    return net


def vggish_patches(wave: Any) -> Any:
    """16 kHz mono -> ``(n, 1, 96, 64)`` log-mel patches: 25 ms Hann windows every 10 ms, 64 HTK mel
    bands from 125 to 7500 Hz, log(x + 0.01), non-overlapping 0.96 s patches (VGGish's front end)."""
    import numpy as np

    x = np.asarray(wave, dtype=np.float64)
    win, hop, nfft = 400, 160, 512
    n = 1 + (len(x) - win) // hop
    if n < 96:
        return np.zeros((0, 1, 96, 64), dtype=np.float32)
    frames = x[np.arange(win)[None, :] + hop * np.arange(n)[:, None]]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    spectrum = np.abs(np.fft.rfft(frames * window, nfft))
    log_mel = np.log(spectrum @ _mel_matrix(nfft // 2 + 1) + 0.01)
    count = len(log_mel) // 96
    return log_mel[: count * 96].reshape(count, 1, 96, 64).astype(np.float32)


def _mel_matrix(bins: int) -> Any:
    import numpy as np

    def mel(f: Any) -> Any:
        return 1127.0 * np.log1p(np.asarray(f) / 700.0)

    centres = mel(np.linspace(0.0, 8000.0, bins))
    edges = np.linspace(mel(125.0), mel(7500.0), 66)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(0.0, np.minimum((centres[:, None] - lo) / (mid - lo), (hi - centres[:, None]) / (hi - mid)))
    weights[0, :] = 0.0
    return weights


class Pann:
    """PANN Cnn14 (16 kHz) embeddings through frechet-audio-distance's model definition."""

    name, sample_rate = "pann", 16000
    requires = ("frechet_audio_distance",)
    extra = "eval"

    def __init__(self, fad: Fad):
        import torch
        from frechet_audio_distance.models.pann import Cnn14_16k

        weights = fad.pann_weights
        path = Path(weights).expanduser() if weights else torch_hub_checkpoint("Cnn14_16k_mAP=0.438.pth")
        if not path.is_file():
            raise ModelNotFoundError(f"PANN weights not found at {path}", hint="set evaluate.fad.pann_weights to Cnn14_16k_mAP=0.438.pth")
        self.net = Cnn14_16k(sample_rate=16000, window_size=512, hop_size=160, mel_bins=64, fmin=50, fmax=8000, classes_num=527)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state.get("model", state))
        self.net.eval()
        self.revision = f"file:{path.name}"

    def frames(self, audio: Any, rate: int) -> Any:
        import torch

        wave = torch.as_tensor(resample(audio, rate, self.sample_rate), dtype=torch.float32)[None]
        with torch.inference_mode():
            return self.net(wave, None)["embedding"].double().numpy()


class Encodec:
    """EnCodec encoder frames (continuous, before quantization) of ``evaluate.fad.encodec_model`` (transformers)."""

    name = "encodec"

    def __init__(self, fad: Fad):
        from transformers import EncodecModel

        model = load_pretrained(EncodecModel.from_pretrained, fad.encodec_model, "EnCodec model")
        self._use(model, int(model.config.sampling_rate), resolved_revision(model, fad.encodec_model))

    def _use(self, model: Any, sample_rate: int, revision: str) -> None:
        self.model, self.sample_rate, self.revision = model.eval(), sample_rate, revision

    def frames(self, audio: Any, rate: int) -> Any:
        import torch

        wave = torch.as_tensor(resample(audio, rate, self.sample_rate), dtype=torch.float32)[None, None]
        with torch.inference_mode():
            return self.model.encoder(wave)[0].T.double().numpy()


class TinyEncodec(Encodec):
    """The encoder of the tiny MusicGen's EnCodec (``evaluate.fad.tiny``): random weights, offline."""

    name = "tiny"

    def __init__(self, fad: Fad):
        from transformers import MusicgenForConditionalGeneration

        if fad.tiny is None:
            raise ConfigError("evaluate.fad.tiny: missing: the tiny FAD backbone is built from it", key="evaluate.fad.tiny",
                              hint="see config/evaluate/tta.yaml")
        path = ensure_tiny_musicgen(fad.tiny)
        codec = MusicgenForConditionalGeneration.from_pretrained(path).audio_encoder
        self._use(codec, int(codec.config.sampling_rate), resolved_revision(None, str(path)))
        self.seed = int(fad.tiny.seed)

    def probabilities(self, audio: Any, rate: int) -> Any:
        """A stand-in label distribution over 527 labels: the mean encoder frame through a seeded random
        linear head and a softmax. Random, but a function of the audio: KLD's code path runs offline."""
        import numpy as np
        from scipy.special import softmax

        frames = self.frames(audio, rate)
        if len(frames) == 0:
            return None
        pooled = frames.mean(axis=0)
        pooled = (pooled - pooled.mean()) / (pooled.std() + 1e-9)  # a scale-free input: logits of a few units
        head = np.random.default_rng(self.seed).normal(size=(frames.shape[1], 527)) * (3 / np.sqrt(frames.shape[1]))
        return softmax(pooled @ head)


def load_backbone(name: str, fad: Fad) -> Backbone:
    """The backbone ``name`` with the weights named in ``evaluate.fad``."""
    return load(BACKBONES, name)(fad)
