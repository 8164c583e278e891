"""PaSST (Koutini et al., "Efficient Training of Audio Transformers with Patchout", Interspeech 2022):
the AudioSet classifier behind the KLD in MusicGen's tables, as a member of the backbones family.

``evaluate.kld.classifier=passt`` uses its label distribution (:meth:`Passt.probabilities`: the
softmax over the 527 AudioSet labels, averaged over the clip's 10 s windows); as a FAD backbone
(``evaluate.fad.backbones=[passt]``) each 10 s window gives one 768-d embedding frame. The network
is ``hear21passt``'s PaSST-S (``passt_s_swa_p16_128_ap476``, built without weights: that package
would otherwise download them); its weights are read tensors-only from a local file
(``evaluate.fad.passt_weights``, default ``$TORCH_HOME/hub/checkpoints/passt-s-f128-p16-s10-ap.476-swa.pt``,
the file of PaSST's v0.0.1-audioset release). Without the package or the file, KLD says
``unavailable: ...`` in one line and the other metrics run.

The spectrogram front end is tagtune's own numpy code following PaSST's published preprocessing
(32 kHz mono, pre-emphasis 0.97, 1024-point STFT of 800-sample Hann windows every 320 samples,
128 Kaldi-style mel bands from 0 to 15 kHz, log(x + 1e-5), then (x + 4.5) / 5), so neither
torchaudio nor its removed real-valued STFT is needed. It has not been checked against the
released weights on a machine with them; ``docs/audio.md`` says how to check.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

from tagtune.errors import ModelNotFoundError
from tagtune.tta.audio import resample
from tagtune.tta.backbones import torch_hub_checkpoint
from tagtune.tta.config import Fad

WEIGHTS = "passt-s-f128-p16-s10-ap.476-swa.pt"
ARCH = "passt_s_swa_p16_128_ap476"
RATE, N_FFT, WIN, HOP, MELS, FMAX = 32000, 1024, 800, 320, 128, 15000.0
WINDOW_S, MIN_WINDOW_S = 10.0, 0.15  # the model's 10 s input; shorter tails than 0.15 s are left out


def kaldi_mel_banks(n_mels: int = MELS, n_fft: int = N_FFT, rate: int = RATE, low: float = 0.0,
                    high: float = FMAX) -> Any:
    """``(n_mels, n_fft // 2 + 1)`` triangular filters equally spaced on Kaldi's mel scale
    (1127 ln(1 + f / 700)); the Nyquist bin gets no weight, as in Kaldi."""
    import numpy as np

    def mel(f: Any) -> Any:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    bins = mel(np.arange(n_fft // 2) * rate / n_fft)
    edges = mel(low) + (mel(high) - mel(low)) / (n_mels + 1) * np.arange(n_mels + 2)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    weights = np.maximum(0.0, np.minimum((bins - left) / (centre - left), (right - bins) / (right - centre)))
    return np.pad(weights, ((0, 0), (0, 1)))


def log_mel(wave: Any) -> Any:
    """``(128, frames)`` normalised log-mel spectrogram of 32 kHz mono audio (PaSST's input)."""
    import numpy as np

    x = np.asarray(wave, dtype=np.float64)
    x = x[1:] - 0.97 * x[:-1] if len(x) > 1 else x
    x = np.pad(x, N_FFT // 2, mode="reflect") if len(x) > N_FFT // 2 else np.pad(x, N_FFT // 2)
    n = 1 + (len(x) - N_FFT) // HOP
    window = np.zeros(N_FFT)
    offset = (N_FFT - WIN) // 2
    window[offset:offset + WIN] = np.hanning(WIN)  # symmetric Hann, centred in the FFT frame
    frames = x[np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]] * window
    power = np.abs(np.fft.rfft(frames, N_FFT)) ** 2
    mel = kaldi_mel_banks() @ power.T
    return ((np.log(mel + 1e-5) + 4.5) / 5.0).astype(np.float32)


def windows(wave: Any) -> list[Any]:
    """The clip cut into the model's 10 s windows (a last one shorter than 0.15 s is dropped)."""
    size = int(WINDOW_S * RATE)
    parts = [wave[i:i + size] for i in range(0, max(len(wave), 1), size)]
    return [p for p in parts if len(p) > MIN_WINDOW_S * RATE]


class Passt:
    """PaSST-S on AudioSet: label probabilities for KLD, 768-d window embeddings for FAD."""

    name, sample_rate = "passt", RATE
    requires = ("hear21passt",)

    def __init__(self, fad: Fad):
        import torch

        path = Path(fad.passt_weights).expanduser() if fad.passt_weights else torch_hub_checkpoint(WEIGHTS)
        if not path.is_file():
            raise ModelNotFoundError(f"PaSST weights not found at {path}",
                                     hint=f"download {WEIGHTS} once (PaSST release v0.0.1-audioset) and set "
                                          "evaluate.fad.passt_weights")
        from hear21passt.models.passt import checkpoint_filter_fn, get_model

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints the whole network
            self.net = get_model(arch=ARCH, pretrained=False, n_classes=527, in_channels=1, fstride=10, tstride=10,
                                 input_fdim=MELS, input_tdim=998)
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(checkpoint_filter_fn(state, self.net))
        self.net.eval()
        self.revision = f"file:{path.name}"

    def _forward(self, audio: Any, rate: int) -> tuple[Any, Any]:
        """(logits, embeddings), one row per 10 s window."""
        import numpy as np
        import torch

        parts = windows(resample(audio, rate, RATE))
        if not parts:
            return np.zeros((0, 527)), np.zeros((0, 768))
        logits, embeddings = [], []
        with torch.inference_mode(), contextlib.redirect_stdout(io.StringIO()):
            for part in parts:
                spec = torch.from_numpy(log_mel(part))[None, None]
                out, features = self.net(spec)
                logits.append(out[0].double().numpy())
                embeddings.append(features[0].double().numpy())
        return np.stack(logits), np.stack(embeddings)

    def probabilities(self, audio: Any, rate: int) -> Any:
        """The clip's AudioSet label distribution: the softmax of each window's logits, averaged (None: too short)."""
        from scipy.special import softmax

        logits, _ = self._forward(audio, rate)
        return softmax(logits, axis=1).mean(axis=0) if len(logits) else None

    def frames(self, audio: Any, rate: int) -> Any:
        return self._forward(audio, rate)[1]
