"""Validation metrics for probe predictions (higher is better for all of them).

Each metric takes the list of predictions and the list of labels (strings as LLaMA-Factory writes them in
``generated_predictions.jsonl``) and returns a :class:`MetricResult`. A label holding a JSON list of strings
(``'["two", "2"]'``) gives several references (VQA answers, several captions); otherwise the label is the single
reference. ``docs/metrics.md`` states each definition and the protocol it follows.

=============== ==============================================================================================
``em``          exact match after the authors' normalisation (strip, lower-case, one trailing period dropped)
``vqa``         official VQA accuracy: official answer processing, leave-one-out min(1, matches / 3)
``cider``       CIDEr-D on the raw strings, as the authors' caption script (pycocoevalcap ``Cider``)
``cider_coco``  CIDEr-D after the COCO caption protocol's PTB tokenisation (Java)
``cider_words`` CIDEr-D on Unicode word tokens (lower-case, no punctuation, CJK characters)
``bleu``        corpus BLEU-4 on Unicode word tokens (pycocoevalcap ``Bleu``)
``bleu_coco``   corpus BLEU-4 after PTB tokenisation (COCO caption protocol, Java)
``rouge_l``     mean sentence ROUGE-L F (beta 1.2) on Unicode word tokens
``gleu``        corpus GLEU (NLTK) on Unicode word tokens
``iou_acc``     share of predicted boxes with IoU > 0.5, first ``[...]`` of each text (authors' protocol)
``miou``        mean IoU of the boxes
=============== ==============================================================================================
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from ..errors import ProbeError
from .base import Metric, MetricResult, all_references, references
from .caption import bleu4, bleu_coco, cider, cider_coco, cider_words, gleu, lcs_length, rouge_l, rouge_l_sentence
from .grounding import box_iou, box_ious, find_box, iou_accuracy, mean_iou, parse_box
from .qa import exact_match, normalize_vqa, vqa_accuracy, vqa_score
from .text import normalize_em, tokenize, words

METRICS: dict[str, Metric] = {
    "em": exact_match,
    "vqa": vqa_accuracy,
    "cider": cider,
    "cider_coco": cider_coco,
    "cider_words": cider_words,
    "bleu": bleu4,
    "bleu_coco": bleu_coco,
    "rouge_l": rouge_l,
    "gleu": gleu,
    "iou_acc": iou_accuracy,
    "miou": mean_iou,
}
# Metrics whose values are not fractions in [0, 1] (CIDEr-D reaches 10): mixing them with fractions in one task
# group makes the group score follow them.
UNBOUNDED_METRICS = frozenset({"cider", "cider_coco", "cider_words"})
# Names users reach for; each points to the metric that means it.
ALIASES = {
    "exact_match": "em", "accuracy": "em", "acc": "em", "vqa_acc": "vqa", "vqa_accuracy": "vqa",
    "cider_d": "cider", "ciderd": "cider", "cider_raw": "cider", "bleu4": "bleu", "bleu_4": "bleu",
    "rouge": "rouge_l", "rougel": "rouge_l", "rouge-l": "rouge_l", "iou": "iou_acc", "acc_iou": "iou_acc",
    "mean_iou": "miou",
}  # fmt: skip


def get_metric(name: str) -> Metric:
    """Return the metric function called ``name`` or raise a ProbeError naming the likely one and the valid names."""
    try:
        return METRICS[name]
    except KeyError:
        pass
    guess = ALIASES.get(name.lower()) or (name.lower() if name.lower() in METRICS else None)
    if guess is None:
        close = difflib.get_close_matches(name.lower(), list(METRICS), n=1)
        guess = close[0] if close else None
    hint = f" Did you mean {guess!r}?" if guess else ""
    raise ProbeError(f"unknown metric {name!r}; valid metrics: {', '.join(METRICS)}.{hint}") from None


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


__all__ = [
    "ALIASES", "METRICS", "UNBOUNDED_METRICS", "Metric", "MetricResult", "all_references", "bleu4", "bleu_coco",
    "box_iou", "box_ious", "cider", "cider_coco", "cider_words", "exact_match", "find_box", "get_metric", "gleu",
    "iou_accuracy", "lcs_length", "mean_iou", "normalize_em", "normalize_vqa", "parse_box", "references",
    "rouge_l", "rouge_l_sentence", "score", "tokenize", "vqa_accuracy", "vqa_score", "words",
]  # fmt: skip
