"""Caption and text-generation metrics: the CIDEr-D family, BLEU-4, ROUGE-L, GLEU.

=============== ============================ =============================================================
metric          tokenisation                 protocol
=============== ============================ =============================================================
``cider``       raw ``str.split()``          the authors' ``eval/caption.py``: pycocoevalcap CIDEr-D on the
                                             strings as generated (case and punctuation count)
``cider_coco``  PTB (Java), lower-case,      COCO caption evaluation (``COCOEvalCap``): PTBTokenizer, then
                punctuation tokens dropped   CIDEr-D — the numbers of COCO leaderboards
``bleu_coco``   same                         COCO caption evaluation: pycocoevalcap BLEU-4
``cider_words`` :func:`.text.words`          CIDEr-D on Unicode word tokens (lower-case, no punctuation; CJK
                                             characters): captions in languages other than English
``bleu``        :func:`.text.words`          corpus BLEU-4 (pycocoevalcap ``Bleu``, "closest" reference length)
``rouge_l``     :func:`.text.words`          mean sentence ROUGE-L F, beta 1.2 (pycocoevalcap ``Rouge``)
``gleu``        :func:`.text.words`          corpus GLEU (NLTK ``corpus_gleu``, n-grams 1-4)
=============== ============================ =============================================================

CIDEr-D is computed by :mod:`.ciderd` (vectorised, equal to pycocoevalcap's ``Cider`` to 1e-9, 15-18x less CPU time).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import MetricResult, all_references
from .ciderd import cider_d
from .ptb import ptb_tokenize
from .text import tokenize

_PTB_CACHE: dict[str, tuple[tuple[str, ...], tuple[str, ...], list[str], list[list[str]]]] = {}


def _raw(predictions: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    return list(predictions), all_references(labels)


def _words(predictions: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    return [tokenize(p) for p in predictions], [[tokenize(r) for r in refs] for refs in all_references(labels)]


def _ptb(predictions: Sequence[str], labels: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """PTB tokens of predictions and references: one Java run for both (one per file for cider_coco + bleu_coco)."""
    key = (tuple(predictions), tuple(labels))
    cached = _PTB_CACHE.get("last")
    if cached is not None and cached[:2] == key:
        return cached[2], cached[3]
    refs = all_references(labels)
    flat = ptb_tokenize(list(predictions) + [r for rs in refs for r in rs])
    preds, pos, out = flat[: len(predictions)], len(predictions), []
    for rs in refs:
        out.append(flat[pos : pos + len(rs)])
        pos += len(rs)
    _PTB_CACHE["last"] = (*key, preds, out)
    return preds, out


def _cider(preds: list[str], refs: list[list[str]]) -> MetricResult:
    return MetricResult(cider_d(preds, refs), len(preds))


def cider(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """CIDEr-D on the raw strings, as the authors' ``eval/caption.py`` feeds pycocoevalcap (no tokenisation)."""
    return _cider(*_raw(predictions, labels))


def cider_coco(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """CIDEr-D after the COCO protocol's PTB tokenisation (needs Java)."""
    return _cider(*_ptb(predictions, labels))


def cider_words(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """CIDEr-D on Unicode word tokens (:func:`.text.words`): lower-case, no punctuation, CJK characters."""
    return _cider(*_words(predictions, labels))


def _bleu(preds: list[str], refs: list[list[str]]) -> MetricResult:
    from pycocoevalcap.bleu.bleu import Bleu

    scores, _ = Bleu(4).compute_score(dict(enumerate(refs)), {k: [p] for k, p in enumerate(preds)}, verbose=0)
    extra = {f"bleu{n}": float(scores[n - 1]) for n in (1, 2, 3)}
    return MetricResult(float(scores[3]), len(preds), extra=extra)


def bleu4(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Corpus BLEU-4 (pycocoevalcap ``Bleu``) on word tokens; BLEU-1..3 in ``extra``."""
    return _bleu(*_words(predictions, labels))


def bleu_coco(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Corpus BLEU-4 after the COCO protocol's PTB tokenisation (needs Java); BLEU-1..3 in ``extra``."""
    return _bleu(*_ptb(predictions, labels))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, Hyyrö 2004).

    Same result as pycocoevalcap's O(len(a)·len(b)) ``my_lcs``, but one big-integer step per token of ``b``
    (17 s → 0.5 s on 10,000 pairs of 100-word captions).
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_sentence(candidate: str, refs: Sequence[str], beta: float = 1.2) -> float:
    """Sentence ROUGE-L F exactly as pycocoevalcap's ``Rouge.calc_score`` (max precision and recall over refs).

    An empty candidate or reference contributes 0 (pycocoevalcap divides by zero there).
    """
    cand = candidate.split()
    if not cand:
        return 0.0
    precisions, recalls = [], []
    for ref in refs:
        tokens = ref.split()
        if not tokens:
            continue
        lcs = lcs_length(tokens, cand)
        precisions.append(lcs / len(cand))
        recalls.append(lcs / len(tokens))
    if not precisions:
        return 0.0
    p, r = max(precisions), max(recalls)
    if p == 0 or r == 0:
        return 0.0
    return ((1 + beta**2) * p * r) / (r + beta**2 * p)


def rouge_l(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Mean sentence ROUGE-L F-measure (beta 1.2, as pycocoevalcap ``Rouge``) on word tokens."""
    preds, refs = _words(predictions, labels)
    total = sum(rouge_l_sentence(p, r) for p, r in zip(preds, refs))
    return MetricResult(total / len(preds), len(preds))


def gleu(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Corpus GLEU (NLTK ``corpus_gleu``, n-grams 1-4) on word tokens."""
    from nltk.translate.gleu_score import corpus_gleu

    preds, refs = _words(predictions, labels)
    value = corpus_gleu([[r.split() for r in rs] for rs in refs], [p.split() for p in preds])
    return MetricResult(float(value), len(preds))
