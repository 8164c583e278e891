"""Tiny offline models for the audio stage: a small MusicGen and a small CLAP, built from configs.

Both have random weights and a byte-level BPE tokenizer trained on a few lines of music words, so
they need no network and run in fractions of a second on a CPU. Their audio is noise: they exist
so that tests, demos and ``--preset quick_test`` exercise the real code paths (tokenizer ->
text encoder -> decoder with the delay pattern -> EnCodec; CLAP text and audio towers). Each is
built once into a cache directory: into a temporary folder first, renamed into place when
complete, so concurrent builds (parallel test workers, several shards) never see half a model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tagtune.files.cache import build_cached
from tagtune.models.hub import quiet_transformers
from tagtune.tta.config import TinyClap, TinyMusicgen

TINY_NAME = "tiny"  # model.name / evaluate.clap_model that selects the tiny model

# Bump when the architecture below changes, so old caches are not reused.
_MUSICGEN_VERSION = "musicgen-v2"
_CLAP_VERSION = "clap-v2"
_CLAP_SPREAD = 20.0  # weight scale that keeps random embeddings apart (see ensure_tiny_clap)

_CORPUS = [
    "a calm ambient piano piece with soft strings and a slow tempo",
    "energetic rock song driven by electric guitar, bass and loud drums at a fast tempo",
    "upbeat electronic dance track with synth bass, claps and a four on the floor kick",
    "melancholic jazz ballad with saxophone, double bass and brushed drums",
    "happy acoustic folk tune with guitar, fiddle and hand claps",
    "dark cinematic orchestral music with low brass, choir and timpani",
    "relaxed hip hop beat with vinyl crackle, mellow keys and a laid back groove",
    "aggressive heavy metal riff with distorted guitars and double kick drums",
    "dreamy lo-fi pop with female vocals, warm pads and reverb",
    "funky groove with slap bass, wah guitar, horns and a medium tempo",
    "classical string quartet, romantic and expressive, moderate tempo",
    "reggae rhythm with offbeat guitar skank, organ and deep bass",
]


def _expand(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expandvars(str(path))).expanduser()


def _train_tokenizer(special: list[str], template: str | None, vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer (any text encodes) wrapped for transformers."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS, trainer)
    if template:
        tok.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(s, tok.token_to_id(s)) for s in special if s in template]
        )
    return tok


def _t5_like_tokenizer() -> Any:
    """The MusicGen text encoder's tokenizer: T5-style specials, an `</s>` after every prompt."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(["<pad>", "</s>", "<unk>"], "$A </s>"),
        pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=512,
    )


def randomize_codebooks(model: Any) -> None:
    """Give EnCodec's codebooks random entries: transformers initialises them to zeros, which would
    decode every code sequence to the same audio (released checkpoints load trained ones)."""
    import torch

    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)


def tiny_musicgen_dir(tiny: TinyMusicgen) -> Path:
    """Where the tiny MusicGen for these settings lives (built or not)."""
    return _expand(tiny.cache_dir) / f"{_MUSICGEN_VERSION}-sr{tiny.sampling_rate}-seed{tiny.seed}"


def build_musicgen(text: dict[str, Any], codec: dict[str, Any], decoder: dict[str, Any], seed: int = 0) -> tuple[Any, Any]:
    """A MusicGen with random weights and the locally trained T5-style tokenizer, built in memory.

    ``text``, ``codec`` and ``decoder`` are keyword arguments of ``T5Config``, ``EncodecConfig`` and
    ``MusicgenDecoderConfig`` (the tiny model here; benchmarks pass the released models' shapes).
    Token ids, sampling defaults and the EnCodec codebooks are set as in the released checkpoints.

    Returns:
        ``(model, processor)``.
    """
    import torch
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        GenerationConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
    )

    quiet_transformers()
    tok = _t5_like_tokenizer()
    size = int(decoder["vocab_size"])  # MusicGen's pad/bos id is the codebook size
    config = MusicgenConfig(
        text_encoder=T5Config(pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **{"vocab_size": len(tok), **text}),
        audio_encoder=EncodecConfig(audio_channels=1, use_causal_conv=False, normalize=False, **codec),
        decoder=MusicgenDecoderConfig(pad_token_id=size, bos_token_id=size, audio_channels=1, **decoder),
    )
    if config.audio_encoder.num_quantizers != config.decoder.num_codebooks:
        raise RuntimeError(f"EnCodec has {config.audio_encoder.num_quantizers} quantizers but the decoder "
                           f"{config.decoder.num_codebooks} codebooks: adjust target_bandwidths")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MusicgenForConditionalGeneration(config).eval()
        randomize_codebooks(model)
    model.generation_config = GenerationConfig(
        do_sample=True, top_k=250, guidance_scale=3.0, max_length=1500,
        bos_token_id=size, pad_token_id=size, decoder_start_token_id=size,
    )
    rate = int(codec["sampling_rate"])
    processor = MusicgenProcessor(feature_extractor=EncodecFeatureExtractor(feature_size=1, sampling_rate=rate), tokenizer=tok)
    return model, processor


def ensure_tiny_musicgen(tiny: TinyMusicgen) -> Path:
    """Build the tiny MusicGen once (if needed) and return its directory.

    The EnCodec hop is fixed at 320 samples, so the frame rate is ``sampling_rate / 320`` (50 Hz at
    the default 16 kHz, like the real models at 32 kHz with their 640-sample hop). Four codebooks of
    64 entries; the EnCodec bandwidth is chosen so its quantizer count equals the decoder's
    codebook count, as MusicGen requires.
    """
    seed, rate = tiny.seed, tiny.sampling_rate

    def build(dest: Path) -> dict[str, Any]:
        codebooks, codebook_size = 4, 64
        frame_rate = -(-rate // 320)
        model, processor = build_musicgen(
            text={"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4},
            codec={"sampling_rate": rate, "hidden_size": 16, "num_filters": 4, "num_residual_layers": 1,
                   "upsampling_ratios": [8, 5, 4, 2], "codebook_size": codebook_size, "codebook_dim": 16,
                   # between 4 and 5 quantizers' worth, so EnCodec's quantizer count is the codebook count
                   "target_bandwidths": [(codebooks * frame_rate * 6 + frame_rate * 3) / 1000], "num_lstm_layers": 1},
            decoder={"vocab_size": codebook_size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                     "ffn_dim": 64, "num_codebooks": codebooks, "max_position_embeddings": 2048},
            seed=seed,
        )
        model.save_pretrained(dest)
        processor.save_pretrained(dest)
        return {"kind": "musicgen", "version": _MUSICGEN_VERSION, "seed": seed, "sampling_rate": rate,
                "parameters": sum(p.numel() for p in model.parameters())}

    return build_cached(tiny_musicgen_dir(tiny), build)


def tiny_clap_dir(tiny: TinyClap) -> Path:
    return _expand(tiny.cache_dir) / f"{_CLAP_VERSION}-seed{tiny.seed}"


def ensure_tiny_clap(tiny: TinyClap) -> Path:
    """Build the tiny CLAP once (if needed) and return its directory.

    It takes 16 kHz audio (32 mel bins, 10 s windows cut to a 64x64 image, no fusion, so the
    feature extractor's truncation is ``rand_trunc``; callers cut clips to the window first, which
    keeps embeddings deterministic). The released checkpoints take 48 kHz; callers resample to
    whatever rate the processor declares. Random weights at the usual tiny scale give near-constant
    embeddings (every text within cosine 0.997 of every other), which the evaluation self-test
    rightly refuses, so the weight matrices are scaled up until different inputs land apart: the
    scores still mean nothing, but every code path runs on embeddings shaped like real ones.
    """
    seed = tiny.seed

    def build(dest: Path) -> dict[str, Any]:
        import torch
        from transformers import (
            ClapConfig,
            ClapFeatureExtractor,
            ClapModel,
            ClapProcessor,
            PreTrainedTokenizerFast,
        )

        quiet_transformers()
        special = ["<s>", "<pad>", "</s>", "<unk>"]
        tok = PreTrainedTokenizerFast(
            tokenizer_object=_train_tokenizer(special, "<s> $A </s>"),
            bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=128,
        )
        fe = ClapFeatureExtractor(
            feature_size=32, sampling_rate=16000, hop_length=1334, max_length_s=10, fft_window_size=1024, frequency_max=8000,
            truncation="rand_trunc", padding="repeatpad",
        )
        config = ClapConfig(
            text_config={"vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                         "intermediate_size": 64, "max_position_embeddings": 130, "pad_token_id": 1,
                         "bos_token_id": 0, "eos_token_id": 2},
            audio_config={"num_mel_bins": 32, "spec_size": 64, "patch_size": 4, "patch_stride": [4, 4],
                          "window_size": 4, "hidden_size": 32, "patch_embeds_hidden_size": 16, "depths": [1, 1],
                          "num_attention_heads": [2, 2], "enable_fusion": False},
            projection_dim=32,
        )
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = ClapModel(config).eval()
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if param.dim() >= 2 and ("word_embeddings" in name or "embeddings" not in name):
                        param.mul_(_CLAP_SPREAD)
        model.save_pretrained(dest)
        ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(dest)
        return {"kind": "clap", "version": _CLAP_VERSION, "seed": seed,
                "parameters": sum(p.numel() for p in model.parameters())}

    return build_cached(tiny_clap_dir(tiny), build)
