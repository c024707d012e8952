"""Metrics on hand-checked cases; every expected value is worked out by hand in the comments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.metrics import (
    METRICS,
    box_iou,
    lcs_length,
    normalize_em,
    normalize_vqa,
    parse_box,
    references,
    rouge_l_sentence,
    score,
    tokenize,
)


def test_em_normalisation_like_the_paper() -> None:
    assert normalize_em("  Yes. ") == "yes"
    assert normalize_em("yes..") == "yes."  # only one trailing period is dropped
    assert normalize_em("Two") == "two"


def test_exact_match() -> None:
    preds = ["Yes.", "no", " Blue ", "2", "red car"]
    labels = ["yes", "No.", "blue", "two", "red"]
    assert score("em", preds, labels).value == pytest.approx(3 / 5)


def test_references_from_json_list() -> None:
    assert references('["a", "b"]') == ["a", "b"]
    assert references("[0.1, 0.2, 0.3, 0.4]") == ["[0.1, 0.2, 0.3, 0.4]"]  # a box is one reference
    assert references("[not json") == ["[not json"]
    assert score("em", ["b"], ['["a", "b"]']).value == 1.0


def test_vqa_normalisation() -> None:
    assert normalize_vqa("Two dogs.") == "2 dogs"
    assert normalize_vqa("the 1,000") == "1000"
    assert normalize_vqa("3.5") == "3.5"
    assert normalize_vqa("yes!") == "yes"


def test_vqa_soft_accuracy_by_hand() -> None:
    # 10 answers, 2 of them equal the prediction: leaving out a matching one leaves 1 match (1/3), leaving out
    # another leaves 2 (2/3): (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    answers = '["two", "2", "3", "3", "3", "3", "3", "3", "3", "3"]'
    assert score("vqa", ["2"], [answers]).value == pytest.approx(0.6)
    # 4 matches or more: every leave-one-out keeps >= 3 → 1
    many = '["2", "2", "2", "2", "3", "3", "3", "3", "3", "3"]'
    assert score("vqa", ["Two"], [many]).value == pytest.approx(1.0)
    # a single reference is an exact match of normalised answers
    assert score("vqa", ["Two.", "3"], ["2", "4"]).value == pytest.approx(0.5)


def test_tokenize() -> None:
    assert tokenize("A Dog, running!  Fast.") == "a dog running fast"


def test_cider_identical_and_disjoint() -> None:
    labels = ["a dog runs on the grass", "two cats sleep on a red sofa", "a man rides a bike down the street"]
    # identical captions: every n-gram vector equals the reference's, cos = 1 for n = 1..4 → 10 * mean(1) = 10
    assert score("cider", labels, labels).value == pytest.approx(10.0)
    # no shared n-gram → 0
    assert score("cider", ["zzz"] * 3, labels).value == pytest.approx(0.0)
    partial = score("cider", ["a dog runs", "two cats", "a man rides"], labels).value
    assert 0 < partial < 10


def test_bleu_rouge_gleu_identical() -> None:
    labels = ["a dog runs on the grass", "two cats sleep on a red sofa"]
    assert score("bleu", labels, labels).value == pytest.approx(1.0)
    assert score("rouge_l", labels, labels).value == pytest.approx(1.0)
    assert score("gleu", labels, labels).value == pytest.approx(1.0)


def test_rouge_l_by_hand() -> None:
    # cand "a b c d", ref "a c d e": LCS = 3, P = R = 3/4, F_beta = (1 + b²) P R / (R + b² P) = 3/4
    assert score("rouge_l", ["a b c d"], ["a c d e"]).value == pytest.approx(0.75)
    # empty prediction scores 0 (pycocoevalcap would divide by zero)
    assert score("rouge_l", ["", "a b c d"], ["a", "a c d e"]).value == pytest.approx(0.375)


def test_gleu_by_hand() -> None:
    # hyp "a b", ref "a c": n-grams (n <= 4) {a, b, a b} vs {a, c, a c}: 1 match of 3 → min(1/3, 1/3)
    assert score("gleu", ["a b"], ["a c"]).value == pytest.approx(1 / 3)


def test_bleu_empty_prediction_is_zero_not_a_crash() -> None:
    assert score("bleu", [""], ["a b c d e"]).value == pytest.approx(0.0, abs=1e-6)


def test_parse_box() -> None:
    assert parse_box("[0.1, 0.2, 0.5, 0.6]") == (0.1, 0.2, 0.5, 0.6)
    assert parse_box("The box is [10,20, 30 ,40].") == (10, 20, 30, 40)
    assert parse_box("1 2 3 4") == (1, 2, 3, 4)
    assert parse_box("somewhere on the left") is None
    assert parse_box("[1, 2, 3]") is None


def test_box_iou_by_hand() -> None:
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)  # inter 1, union 4 + 4 - 1
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert box_iou([1, 1, 0, 0], [1, 1, 0, 0]) == 0.0  # degenerate: empty union


def test_iou_metrics_count_unparsable_as_miss() -> None:
    preds = ["[0, 0, 1, 1]", "[0, 0, 2, 1]", "no idea", "[0, 0, 2, 2]"]
    labels = ["[0, 0, 1, 1]", "[0, 0, 1, 1]", "[0, 0, 1, 1]", "[1, 1, 3, 3]"]
    # IoUs: 1, 1/2 (>= 0.5 counts), 0 (unparsable), 1/7
    acc = score("iou_acc", preds, labels)
    assert acc.value == pytest.approx(2 / 4)
    assert acc.unparsable == 1
    miou = score("miou", preds, labels)
    assert miou.value == pytest.approx((1 + 0.5 + 0 + 1 / 7) / 4)
    assert miou.unparsable == 1


def test_unparsable_label_is_an_error() -> None:
    with pytest.raises(ProbeError, match=r"label #2 is not a box"):
        score("iou_acc", ["[0, 0, 1, 1]"] * 2, ["[0, 0, 1, 1]", "a cat"])


def test_bad_calls() -> None:
    with pytest.raises(ProbeError, match=r"unknown metric 'accuracy'; valid metrics: em, vqa, cider"):
        score("accuracy", ["a"], ["a"])
    with pytest.raises(ProbeError, match="2 predictions but 1 labels"):
        score("em", ["a", "b"], ["a"])
    with pytest.raises(ProbeError, match="no predictions"):
        score("em", [], [])


def test_all_metrics_listed() -> None:
    assert set(METRICS) == {"em", "vqa", "cider", "bleu", "rouge_l", "gleu", "iou_acc", "miou"}


# ------------------------------------------------------------------- ROUGE-L against pycocoevalcap's Rouge

tokens = st.lists(st.sampled_from(list("abcdefg")), max_size=25)


@settings(max_examples=200, deadline=None)
@given(tokens, tokens)
def test_lcs_matches_pycocoevalcap(a: list[str], b: list[str]) -> None:
    from pycocoevalcap.rouge.rouge import my_lcs

    assert lcs_length(a, b) == (my_lcs(a, b) if a and b else 0)


@settings(max_examples=100, deadline=None)
@given(tokens.filter(bool), st.lists(tokens.filter(bool), min_size=1, max_size=3))
def test_rouge_l_sentence_matches_pycocoevalcap(cand: list[str], refs: list[list[str]]) -> None:
    from pycocoevalcap.rouge.rouge import Rouge

    expected = Rouge().calc_score([" ".join(cand)], [" ".join(r) for r in refs])
    assert rouge_l_sentence(" ".join(cand), [" ".join(r) for r in refs]) == pytest.approx(expected, abs=1e-12)
