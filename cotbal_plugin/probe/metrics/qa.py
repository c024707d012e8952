"""Short-answer metrics: ``em`` (the authors' exact match) and ``vqa`` (the official VQA accuracy).

``vqa`` is written from the official VQA evaluation (``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` of
github.com/GT-Vision-Lab/VQA, last changed in March 2021): its answer processing is reproduced step by step,
quirks included (they decide which answers match):

1. newlines and tabs become spaces; the answer is stripped;
2. ``processPunctuation``: each mark of ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is *deleted* when the
   original text has it next to a space or holds a digit-comma-digit (``1,000``) anywhere, else *replaced by a
   space*; then every ``.`` not followed by a digit is deleted — the official pattern ``(?!<=\\d)(\\.)(?!\\d)``
   meant "not preceded by a digit" but is a look-ahead, so ``"3."`` → ``"3"`` and ``"x.5"`` stays — at most 32
   times (the official call passes ``re.UNICODE`` = 32 as ``count``). The apostrophe is not in the list:
   ``"don't"`` keeps it;
3. ``processDigitArticle``: lower-case, split on whitespace, number words ``none, zero … ten`` → digits, articles
   ``a, an, the`` dropped, contractions restored from the official map (``dont`` → ``don't``), joined with spaces.

Accuracy of a prediction against answers a_1..a_n: mean over k of ``min(1, #{j != k : a_j == prediction} / 3)``
("10 choose 9" for VQA's ten answers).

Two deliberate differences from the official script, both documented in ``docs/metrics.md``:

* the official script processes the answers (and the prediction) only when the ten answers are not all equal —
  its annotations are already normalised. Here the prediction and every reference are always processed, so
  labels written by hand ("Two", "Yes.") score as intended; on normalised annotations the result is the same;
* with a single reference (a label that is not a JSON list), the score is exact match of the processed answers
  (the official formula would give 0: no other answer is left when the only one is held out).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .base import MetricResult, references
from .text import normalize_em

# The official contractions map (data, reproduced verbatim: straight apostrophes as in the 2021 version; keys with
# capitals such as "Im" can never match after lower-casing, as in the official script).
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (
    ";",
    "/",
    "[",
    "]",
    '"',
    "{",
    "}",
    "(",
    ")",
    "=",
    "+",
    "\\",
    "_",
    "-",
    ">",
    "<",
    "@",
    "`",
    ",",
    "?",
    "!",
)
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # sic: a look-ahead for "<=" + digit, i.e. "a period not before a digit"
_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
_OFFICIAL_PERIOD_COUNT = 32  # the official script passes re.UNICODE (= 32) as the ``count`` argument of sub()


def process_punctuation(text: str) -> str:
    """Official ``processPunctuation`` (see the module docstring, step 2)."""
    out = text
    strip_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    for mark in PUNCTUATION:
        if strip_all or mark + " " in text or " " + mark in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_OFFICIAL_PERIOD_COUNT)


def process_digit_article(text: str) -> str:
    """Official ``processDigitArticle``: lower-case, number words → digits, no articles, contractions restored."""
    out = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            out.append(CONTRACTIONS.get(word, word))
    return " ".join(out)


def normalize_vqa(text: str) -> str:
    """Official VQA answer processing: whitespace, punctuation, then digits / articles / contractions."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def vqa_score(prediction: str, answers: Sequence[str]) -> float:
    """Official VQA accuracy of one prediction (leave-one-out mean of min(1, matches / 3)); 1 answer: exact match."""
    pred = normalize_vqa(prediction)
    refs = [normalize_vqa(a) for a in answers]
    if len(refs) == 1:
        return float(pred == refs[0])
    matches = [r == pred for r in refs]
    total = sum(matches)
    return sum(min(1.0, (total - m) / 3.0) for m in matches) / len(refs)


def vqa_accuracy(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Mean official VQA accuracy; a label holding a JSON list of strings gives the human answers."""
    total = sum(vqa_score(p, references(label)) for p, label in zip(predictions, labels, strict=True))
    return MetricResult(total / len(predictions), len(predictions))


def exact_match(predictions: Sequence[str], labels: Sequence[str]) -> MetricResult:
    """Share of predictions equal to (one of) their reference(s) after :func:`normalize_em` (authors' qa.py)."""
    hits = 0
    for pred, label in zip(predictions, labels, strict=True):
        p = normalize_em(pred)
        hits += any(p == normalize_em(r) for r in references(label))
    return MetricResult(hits / len(predictions), len(predictions))
