"""em (the authors' qa.py) and vqa (the official VQA evaluation), on the edge cases of their definitions.

Every expected value is derived by hand from the definitions (VisATB ``eval/qa.py``; GT-Vision-Lab/VQA
``vqaEval.py``), step by step in the comments.
"""

from __future__ import annotations

import json

import pytest

from cotbal_plugin.probe.metrics import score
from cotbal_plugin.probe.metrics.qa import (
    CONTRACTIONS,
    normalize_vqa,
    process_digit_article,
    process_punctuation,
    vqa_score,
)

# ------------------------------------------------------------------------------------------------------ em


def test_exact_match_adversarial() -> None:
    cases = [  # (prediction, label, hit?) under: strip, lower, remove one final '.'
        ("Yes.", "yes", True),
        ("  YES  ", "Yes.", True),
        ("yes..", "yes", False),  # "yes." != "yes"
        ("yes .", "yes", False),  # "yes " != "yes"
        ("yes", "yes!", False),  # no other punctuation is removed
        ("two", "2", False),  # no number mapping
        ("the cat", "cat", False),  # no article removal
        ("red car", "red", False),
        (".", "", True),  # both become ""
        ("3.5", "3.5.", True),
    ]
    preds, labels, hits = zip(*cases)
    assert score("em", list(preds), list(labels)).value == pytest.approx(sum(hits) / len(cases))
    for p, lab, hit in cases:
        assert score("em", [p], [lab]).value == float(hit), (p, lab)


# ----------------------------------------------------------------------------------------------------- vqa


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("don't", "don't"),  # the apostrophe is not in the official punctuation list; "don't" is no key of the map
        ("dont", "don't"),  # contractions map
        ("Isnt it", "isn't it"),  # lower-cased before the map
        ("1,000", "1000"),  # digit-comma-digit: every mark is deleted, not replaced by a space
        ("1,000 dogs!", "1000 dogs"),  # ... "!" too (deleted because of the digit-comma-digit elsewhere)
        ("x.5", "x.5"),  # a period followed by a digit stays
        ("3.5", "3.5"),
        ("3.", "3"),  # a period not followed by a digit goes
        ("e.g. this", "eg this"),
        ("Two", "2"),  # number words → digits (after lower-casing)
        ("ten", "10"),
        ("none", "0"),
        ("eleven", "eleven"),  # only zero..ten and none
        ("the cat", "cat"),  # articles dropped
        ("A", ""),
        ("an apple", "apple"),
        ("yes!", "yes"),  # "!" not next to a space: replaced by a space, then split/joined away
        ("left-hand", "left hand"),  # "-" replaced by a space
        ("left - hand", "left hand"),  # "-" next to a space: deleted, double space collapses in split/join
        ("red/blue", "red blue"),
        ("a/b", "b"),  # "/" → space, then the article "a" is dropped
        ("(red)", "red"),
        ("  Yes\n", "yes"),  # newline → space, strip
        ("black\tand white", "black and white"),
        ("it's", "it's"),
    ],
)
def test_official_answer_processing(text: str, expected: str) -> None:
    assert normalize_vqa(text) == expected


def test_processing_steps_separately() -> None:
    # processPunctuation keeps case; processDigitArticle lower-cases
    assert process_punctuation("Yes!") == "Yes "
    assert process_digit_article("The Two Dogs") == "2 dogs"
    # the official call passes re.UNICODE (32) as sub()'s count: at most 32 periods are removed
    assert process_punctuation("." * 40) == "." * 8
    assert CONTRACTIONS["dont"] == "don't" and len(CONTRACTIONS) > 100


def test_ten_answers_leave_one_out() -> None:
    # 10 answers, 2 equal to the prediction after processing ("two" → "2", "2"):
    # leaving out a matching one leaves 1 match → 1/3 (2 times); leaving out another leaves 2 → 2/3 (8 times)
    answers = ["two", "2", "3", "3", "3", "3", "3", "3", "3", "3"]
    assert vqa_score("2", answers) == pytest.approx((2 * (1 / 3) + 8 * (2 / 3)) / 10)
    # 3 matches: leaving out a match leaves 2 → 2/3 (3 times); leaving out another leaves 3 → 1 (7 times)
    assert vqa_score("Yes", ["yes"] * 3 + ["no"] * 7) == pytest.approx((3 * (2 / 3) + 7 * 1) / 10)
    # 4 matches or more: every leave-one-out keeps >= 3 → 1
    assert vqa_score("Two", ["2", "2", "2", "2", "3", "3", "3", "3", "3", "3"]) == pytest.approx(1.0)
    assert vqa_score("cat", ["dog"] * 10) == 0.0
    # contractions on both sides: "dont" and "don't" are the same answer
    assert vqa_score("dont", ["don't"] * 4 + ["no"] * 6) == pytest.approx(1.0)


def test_vqa_metric_over_a_set() -> None:
    labels = [json.dumps(["yes"] * 10), json.dumps(["two", "2"] + ["3"] * 8), "2"]
    # 1.0, (2/3 + 8 * 0 ...) : "3" matches 8 answers → 1.0; the single reference "2" vs "Two." → "2": exact 1.0
    value = score("vqa", ["Yes.", "3", "Two."], labels).value
    assert value == pytest.approx(1.0)
    # a single reference is exact match of processed answers
    assert score("vqa", ["Two.", "3"], ["2", "4"]).value == pytest.approx(0.5)
