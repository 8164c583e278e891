"""Reference-based caption metrics on the LP-MusicCaps protocol (the semantics of HF ``evaluate``).

``evaluate.load(...)`` fetches its metric scripts from the Hub at run time, so the same semantics
are implemented here on the underlying libraries:

* **BLEU-1..4** (0-1): our own corpus BLEU with the 13a tokenizer, case-sensitive, no smoothing,
  clipped n-gram counts against all references and one brevity penalty over the corpus (the
  reference length of a segment is its *shortest* reference, as in ``evaluate``'s ``bleu``; it
  equals sacrebleu's ``max_ngram_order=n`` score / 100 for one reference per caption, which the
  tests check).
* **ROUGE-L**: ``rouge-score`` without stemming (lower case, ``[a-z0-9]`` tokens), the mean F over
  pairs (``evaluate`` reports a bootstrap median of that mean, within about 1e-3 of it).
* **METEOR**: NLTK's ``meteor_score`` (alpha 0.9, beta 3, gamma 0.5, best reference) on
  ``word_tokenize`` tokens (sentences split first, see :func:`meteor_tokenizer`), averaged over
  pairs; needs WordNet in an NLTK data folder.
* **BERTScore-F1**: ``bert-score`` with ``roberta-large``, layer 17, no idf, no baseline rescaling
  (``lang="en"``), mean over pairs; a local model folder works offline.
* **MAUVE** (optional): ``mauve-text`` with GPT-2 large features.

A metric whose package or resources are missing reports ``unavailable: <why>`` in one line and
the others still run.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from tagtune.caption.config import EvaluateSection
from tagtune.models.hub import describe_load_error

# mteval-v13a tokenization, as rules: punctuation apart, "." and "," apart unless between digits,
# "-" apart after a digit.
_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)


def unavailable(reason: str) -> str:
    return f"unavailable: {reason}"


def tokenize_13a(text: str) -> list[str]:
    """The 13a tokenizer of BLEU (as in mteval-v13a, sacrebleu and HF ``evaluate``)."""
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        text = text.replace(entity, char)
    text = f" {text} "
    for pattern, repl in _13A_RULES:
        text = pattern.sub(repl, text)
    return text.split()


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def bleu(predictions: Sequence[str], references: Sequence[str | Sequence[str]], max_order: int = 4) -> dict[str, Any]:
    """Corpus BLEU-1..``max_order`` (0-1) with ``evaluate``'s semantics; also precisions and the BP."""
    matches, possible = [0] * max_order, [0] * max_order
    hyp_len = ref_len = 0
    for pred, refs in zip(predictions, references, strict=True):
        refs = [refs] if isinstance(refs, str) else list(refs)
        hyp = tokenize_13a(pred)
        ref_toks = [tokenize_13a(r) for r in refs]
        hyp_len += len(hyp)
        ref_len += min(len(r) for r in ref_toks)
        for n in range(1, max_order + 1):
            best: Counter = Counter()
            for r in ref_toks:
                best |= _ngrams(r, n)
            counts = _ngrams(hyp, n)
            matches[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            possible[n - 1] += max(0, len(hyp) - n + 1)
    precisions = [m / p if p else 0.0 for m, p in zip(matches, possible)]
    ratio = hyp_len / ref_len if ref_len else 0.0
    bp = 0.0 if ratio == 0 else (1.0 if ratio > 1.0 else math.exp(1 - 1 / ratio))
    out: dict[str, Any] = {"precisions": precisions, "brevity_penalty": bp, "length_ratio": ratio,
                           "translation_length": hyp_len, "reference_length": ref_len}
    for n in range(1, max_order + 1):
        ps = precisions[:n]
        out[f"bleu_{n}"] = bp * math.exp(sum(math.log(p) for p in ps) / n) if min(ps) > 0 else 0.0
    return out


def rouge_l(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float | str:
    """Mean ROUGE-L F over pairs (rouge-score, no stemming; best reference per pair)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        return unavailable("rouge-score is not installed (pip install 'tagtune[eval]')")
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    scores = []
    for pred, refs in zip(predictions, references, strict=True):
        refs = [refs] if isinstance(refs, str) else list(refs)
        scores.append(max(scorer.score(r, pred)["rougeL"].fmeasure for r in refs))
    return statistics.fmean(scores) if scores else 0.0


def meteor(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> float | str:
    """Mean METEOR (NLTK: alpha 0.9, beta 3, gamma 0.5; the best reference of each pair)."""
    try:
        import nltk
        from nltk.translate.meteor_score import meteor_score
    except ImportError:
        return unavailable("nltk is not installed (pip install 'tagtune[eval]')")
    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        try:
            nltk.data.find("corpora/wordnet.zip")
        except LookupError:
            return unavailable("no WordNet in the NLTK data path (set NLTK_DATA to a folder with corpora/wordnet; "
                               "see docs/caption.md, 'Metrics offline')")

    tok = meteor_tokenizer()
    try:
        scores = [meteor_score([tok(r) for r in ([refs] if isinstance(refs, str) else refs)], tok(pred))
                  for pred, refs in zip(predictions, references, strict=True)]
    except LookupError as exc:
        return unavailable(f"NLTK data missing ({str(exc).strip().splitlines()[0][:80]})")
    return statistics.fmean(scores) if scores else 0.0


def meteor_tokenizer() -> Callable[[str], list[str]]:
    """``word_tokenize`` as HF ``evaluate``'s METEOR calls it: sentences first, then words.

    With NLTK's English Punkt data (``punkt_tab``) this is exactly ``word_tokenize``; without it an
    untrained Punkt splits the sentences, which differs only around abbreviations ("e.g."). Splitting
    sentences matters: a full stop inside a caption would otherwise stay glued to its word.
    """
    import nltk
    from nltk.tokenize import NLTKWordTokenizer, PunktSentenceTokenizer, word_tokenize

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return word_tokenize
    except LookupError:
        sentences, words = PunktSentenceTokenizer(), NLTKWordTokenizer()
        return lambda text: [t for sentence in sentences.tokenize(text) for t in words.tokenize(sentence)]


def local_model_path(model: str, revision: str | None = None) -> str:
    """A model folder on disk: ``model`` itself when it is a folder, else its copy in the Hugging Face
    cache (at ``revision``); raises when neither exists (metrics never download)."""
    from pathlib import Path

    if Path(model).expanduser().is_dir():
        return str(Path(model).expanduser())
    from huggingface_hub import snapshot_download

    return snapshot_download(model, revision=revision, local_files_only=True)


def bertscore(predictions: Sequence[str], references: Sequence[str], model: str = "roberta-large", layer: int = 17,
              revision: str | None = None, batch_size: int = 32) -> float | str:
    """Mean BERTScore-F1 (bert-score; no idf, no baseline rescaling, layer ``layer``) from a local model."""
    try:
        from bert_score import BERTScorer
        from transformers import AutoTokenizer
    except ImportError:
        return unavailable("bert-score is not installed (pip install 'tagtune[eval]')")
    try:
        path = local_model_path(model, revision)
        scorer = BERTScorer(model_type=path, num_layers=layer, idf=False, rescale_with_baseline=False,
                            batch_size=batch_size, device="cpu")
        # transformers 5 ignores the prefix-space flag bert-score passes per call: set it on the tokenizer
        scorer._tokenizer = AutoTokenizer.from_pretrained(path, add_prefix_space=True)
        _, _, f1 = scorer.score(list(predictions), [[r] for r in references])
    except Exception as exc:  # noqa: BLE001 -- a missing model must not sink the other metrics
        return unavailable(f"BERTScore model '{model}' is not on disk ({describe_load_error(exc)}); "
                           "download it once, or set evaluate.bertscore.model to a local folder")
    return float(f1.mean())


def mauve(predictions: Sequence[str], references: Sequence[str], model: str = "gpt2-large") -> float | str:
    """MAUVE between the generated and the reference captions (mauve-text, GPT-2 features)."""
    try:
        import mauve as mauve_text
    except ImportError:
        return unavailable("mauve-text is not installed (pip install mauve-text)")
    try:
        path = local_model_path(model)  # mauve-text accepts a folder whose path names gpt2 (the cache's does)
        out = mauve_text.compute_mauve(p_text=list(predictions), q_text=list(references), featurize_model_name=path,
                                       device_id=-1, max_text_length=256, verbose=False)
    except Exception as exc:  # noqa: BLE001 -- a missing featurizer must not sink the other metrics
        return unavailable(f"MAUVE featurizer '{model}' is not on disk: {' '.join(str(exc).split())[:100]}")
    return float(out.mauve)


def _novelty_words(text: str) -> list[str]:
    """LP-MusicCaps' tokenization for novelty: lower case, commas and full stops removed, split on spaces."""
    return text.lower().replace(",", "").replace(".", "").split()


def novelty(predictions: Sequence[str], train_captions: Sequence[str]) -> dict[str, float]:
    """LP-MusicCaps' novelty measures against the captions of a training file.

    ``vocab_size``: distinct words of the predictions; ``novel_vocab``: the share of those words
    that no training caption uses; ``caption_novelty``: the share of predictions that are not, as
    whole strings, a training caption.
    """
    vocab = {w for p in predictions for w in _novelty_words(p)}
    train_vocab = {w for t in train_captions for w in _novelty_words(t)}
    train_set = set(train_captions)
    return {
        "vocab_size": len(vocab),
        "novel_vocab": len(vocab - train_vocab) / len(vocab) if vocab else 0.0,
        "caption_novelty": sum(p not in train_set for p in predictions) / len(predictions) if predictions else 0.0,
    }


def lp_musiccaps(predictions: Sequence[str], references: Sequence[str], settings: EvaluateSection) -> dict[str, Any]:
    """Every reference-based metric of the protocol (``settings``: the ``evaluate`` config section)."""
    out: dict[str, Any] = {}
    if settings.bleu:
        scores = bleu(predictions, references)
        out.update({f"bleu_{n}": scores[f"bleu_{n}"] for n in range(1, 5)}, bleu_brevity_penalty=scores["brevity_penalty"])
    else:
        off = unavailable("turned off (evaluate.bleu=false)")
        out.update({f"bleu_{n}": off for n in range(1, 5)}, bleu_brevity_penalty=off)
    out["meteor"] = meteor(predictions, references) if settings.meteor else unavailable("turned off (evaluate.meteor=false)")
    out["rouge_l"] = rouge_l(predictions, references) if settings.rouge else unavailable("turned off (evaluate.rouge=false)")
    bs = settings.bertscore
    out["bertscore_f1"] = (bertscore(predictions, references, bs.model, bs.layer, bs.revision) if bs.enabled
                           else unavailable("turned off (evaluate.bertscore.enabled=false)"))
    mv = settings.mauve
    out["mauve"] = mauve(predictions, references, mv.model) if mv.enabled else unavailable("off (evaluate.mauve.enabled=true to run it)")
    return out
