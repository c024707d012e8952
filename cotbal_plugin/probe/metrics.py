"""Validation metrics for probe predictions (higher is better for all of them).

Each metric takes the list of predictions and the list of labels (strings as written by LLaMA-Factory in
``generated_predictions.jsonl``) and returns a :class:`MetricResult`. A label holding a JSON list of strings
(``'["two", "2"]'``) gives several references (VQA answers, several captions); otherwise the label is the single
reference.

=========  ===============================================================================================
``em``     exact match after the paper's normalisation: strip, lower-case, drop one trailing period
``vqa``    VQA soft accuracy: mean over leave-one-out subsets of min(1, #matches / 3) (official formula with
           simplified answer normalisation); with a single reference it is exact match of normalised answers
``cider``  CIDEr-D (pycocoevalcap ``Cider``: clipped n-grams, Gaussian length penalty, sigma 6), corpus IDF over
           the scored set; tokenised here (lower-case, punctuation removed) instead of the Java PTB tokenizer
``bleu``   corpus BLEU-4 (pycocoevalcap ``Bleu``), same tokenisation
``rouge_l`` mean sentence ROUGE-L F (beta 1.2), pycocoevalcap ``Rouge``'s formula with a bit-parallel LCS
``gleu``   corpus GLEU (NLTK ``corpus_gleu``), same tokenisation
``iou_acc`` share of boxes ``[x1, y1, x2, y2]`` with IoU >= 0.5 against the label box
``miou``   mean IoU of the boxes
=========  ===============================================================================================

For box metrics an unparsable prediction counts as a miss (IoU 0) and is counted in ``unparsable``; an unparsable
label is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import ProbeError


@dataclass
class MetricResult:
    """Value of one metric over a prediction set (a fraction in [0, 1] for all but CIDEr-D)."""

    value: float
    n: int
    unparsable: int = 0
    extra: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------- references


def references(label: str) -> list[str]:
    """The reference answers in a label: a JSON list of strings gives several, anything else one."""
    text = label.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return [label]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
    return [label]


# --------------------------------------------------------------------------------------------- exact match


def normalize_em(text: str) -> str:
    """The paper's exact-match normalisation: strip, lower-case, drop one trailing period."""
    return text.strip().lower().removesuffix(".")


def exact_match(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Share of predictions equal to (one of) their reference(s) after :func:`normalize_em`."""
    hits = 0
    for pred, label in zip(predictions, labels, strict=True):
        p = normalize_em(pred)
        hits += any(p == normalize_em(r) for r in references(label))
    return MetricResult(hits / len(predictions), len(predictions))


# ------------------------------------------------------------------------------------------------------ VQA

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
_ARTICLES = {"a", "an", "the"}
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_PERIOD_NOT_DECIMAL = re.compile(r"(?<!\d)\.|\.(?!\d)")
_PUNCT = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$:~|']")


def normalize_vqa(text: str) -> str:
    """Simplified VQA answer normalisation: lower-case, punctuation, number words → digits, no articles."""
    text = text.strip().lower().replace("\n", " ").replace("\t", " ")
    text = _DIGIT_COMMA.sub("", text)
    text = _PERIOD_NOT_DECIMAL.sub("", text)
    text = _PUNCT.sub(" ", text)
    words = [_NUMBER_WORDS.get(w, w) for w in text.split() if w not in _ARTICLES]
    return " ".join(words)


def vqa_accuracy(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """VQA soft accuracy: for references a_1..a_n (n >= 2), mean_k min(1, #{j != k : a_j = pred} / 3)."""
    total = 0.0
    for pred, label in zip(predictions, labels, strict=True):
        p = normalize_vqa(pred)
        refs = [normalize_vqa(r) for r in references(label)]
        if len(refs) == 1:
            total += float(p == refs[0])
            continue
        matches = [r == p for r in refs]
        n_match = sum(matches)
        total += sum(min(1.0, (n_match - m) / 3.0) for m in matches) / len(refs)
    return MetricResult(total / len(predictions), len(predictions))


# --------------------------------------------------------------------------------------- text similarity

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> str:
    """Lower-case, drop punctuation, join word tokens with single spaces (stand-in for the PTB tokenizer)."""
    return " ".join(_TOKEN.findall(text.lower()))


def _tokenized(predictions: Sequence[str], labels: Sequence[str]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    res = {i: [tokenize(p)] for i, p in enumerate(predictions)}
    gts = {i: [tokenize(r) for r in references(label)] for i, label in enumerate(labels)}
    if len(res) != len(gts):
        raise ValueError("predictions and labels differ in length")
    return gts, res


def cider_d(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """CIDEr-D over the set (pycocoevalcap ``Cider``; n-grams 1-4, sigma 6)."""
    from pycocoevalcap.cider.cider import Cider

    gts, res = _tokenized(predictions, labels)
    score, _ = Cider().compute_score(gts, res)
    return MetricResult(float(score), len(predictions))


def bleu4(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Corpus BLEU-4 (pycocoevalcap ``Bleu``); BLEU-1..3 in ``extra``."""
    from pycocoevalcap.bleu.bleu import Bleu

    gts, res = _tokenized(predictions, labels)
    # pycocoevalcap's BLEU cannot score an empty hypothesis; an empty prediction is given a token no reference has.
    res = {k: [v[0] or "\x00"] for k, v in res.items()}
    scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
    extra = {f"bleu{n}": float(scores[n - 1]) for n in (1, 2, 3)}
    return MetricResult(float(scores[3]), len(predictions), extra=extra)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (bit-parallel, Hyyrö 2004).

    Same result as pycocoevalcap's O(len(a)·len(b)) ``my_lcs``, but one big-integer step per token of ``b``.
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
    """Sentence ROUGE-L F exactly as pycocoevalcap's ``Rouge.calc_score`` (max precision and recall over refs)."""
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
    """Mean sentence ROUGE-L F-measure (beta 1.2, as pycocoevalcap ``Rouge``); empty prediction or reference = 0."""
    gts, res = _tokenized(predictions, labels)
    total = sum(rouge_l_sentence(res[i][0], gts[i]) for i in res)
    return MetricResult(total / len(predictions), len(predictions))


def gleu(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Corpus GLEU (NLTK ``corpus_gleu``, n-grams 1-4)."""
    from nltk.translate.gleu_score import corpus_gleu

    gts, res = _tokenized(predictions, labels)
    hyps = [res[i][0].split() for i in range(len(res))]
    refs = [[r.split() for r in gts[i]] for i in range(len(gts))]
    return MetricResult(float(corpus_gleu(refs, hyps)), len(predictions))


# ------------------------------------------------------------------------------------------------- boxes

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_BOX_BRACKET = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
_NUMBER = re.compile(_NUM)


def parse_box(text: str) -> tuple[float, float, float, float] | None:
    """First ``[x1, y1, x2, y2]`` in ``text``; else the 4 numbers of a text holding exactly 4; else ``None``."""
    m = _BOX_BRACKET.search(text)
    if m:
        return tuple(float(v) for v in m.groups())  # type: ignore[return-value]
    numbers = _NUMBER.findall(text)
    if len(numbers) == 4:
        return tuple(float(v) for v in numbers)  # type: ignore[return-value]
    return None


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes; degenerate boxes have area 0 and an empty union gives 0."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def _ious(predictions: Sequence[str], labels: Sequence[str]) -> tuple[list[float], int]:
    ious, unparsable = [], 0
    for k, (pred, label) in enumerate(zip(predictions, labels, strict=True)):
        truth = parse_box(label)
        if truth is None:
            raise ProbeError(f"label #{k + 1} is not a box [x1, y1, x2, y2]: {label[:80]!r}; is the metric right?")
        box = parse_box(pred)
        if box is None:
            unparsable += 1
            ious.append(0.0)
        else:
            ious.append(box_iou(box, truth))
    return ious, unparsable


def iou_accuracy(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Share of predicted boxes with IoU >= 0.5 (unparsable predictions are misses, counted)."""
    ious, bad = _ious(predictions, labels)
    return MetricResult(sum(i >= 0.5 for i in ious) / len(ious), len(ious), bad, {"miou": sum(ious) / len(ious)})


def mean_iou(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Mean IoU of predicted boxes (unparsable predictions count 0, counted)."""
    ious, bad = _ious(predictions, labels)
    return MetricResult(sum(ious) / len(ious), len(ious), bad)


Metric = Callable[[Sequence[str], Sequence[str]], MetricResult]

METRICS: dict[str, Metric] = {
    "em": exact_match,
    "vqa": vqa_accuracy,
    "cider": cider_d,
    "bleu": bleu4,
    "rouge_l": rouge_l,
    "gleu": gleu,
    "iou_acc": iou_accuracy,
    "miou": mean_iou,
}


def get_metric(name: str) -> Metric:
    """Return the metric function called ``name`` or raise a ProbeError listing the valid names."""
    try:
        return METRICS[name]
    except KeyError:
        raise ProbeError(f"unknown metric {name!r}; valid metrics: {', '.join(METRICS)}.") from None


def score(name: str, predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Score ``predictions`` against ``labels`` with metric ``name``.

    Raises:
        ProbeError: unknown metric, empty input, or lists of different lengths.
    """
    metric = get_metric(name)
    if len(predictions) != len(labels):
        raise ProbeError(f"{len(predictions)} predictions but {len(labels)} labels; they must pair one to one.")
    if not predictions:
        raise ProbeError("no predictions to score.")
    return metric(predictions, labels)
