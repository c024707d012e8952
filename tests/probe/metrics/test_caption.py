"""BLEU, ROUGE-L and GLEU on word tokens: hand-checked cases, German and Chinese against the libraries called on
tokens written out by hand, and the bit-parallel LCS against pycocoevalcap."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.translate.gleu_score import corpus_gleu
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.rouge.rouge import Rouge

from cotbal_plugin.probe.metrics import lcs_length, rouge_l_sentence, score


def test_identical_texts_score_one() -> None:
    labels = ["a dog runs on the grass", "two cats sleep on a red sofa"]
    for name in ("bleu", "rouge_l", "gleu"):
        assert score(name, labels, labels).value == pytest.approx(1.0), name


def test_rouge_l_by_hand() -> None:
    # cand "a b c d", ref "a c d e": LCS = 3, P = R = 3/4, F_beta = (1 + b²) P R / (R + b² P) = 3/4
    assert score("rouge_l", ["a b c d"], ["a c d e"]).value == pytest.approx(0.75)
    # empty prediction scores 0 (pycocoevalcap would divide by zero)
    assert score("rouge_l", ["", "a b c d"], ["a", "a c d e"]).value == pytest.approx(0.375)


def test_gleu_by_hand() -> None:
    # hyp "a b", ref "a c": n-grams (n <= 4) {a, b, a b} vs {a, c, a c}: 1 match of 3 → min(1/3, 1/3)
    assert score("gleu", ["a b"], ["a c"]).value == pytest.approx(1 / 3)


def test_bleu_empty_prediction_as_pycocoevalcap() -> None:
    preds, labels = ["", "x y z w"], ["a b c d e", "x y z w"]
    expected, _ = Bleu(4).compute_score({0: [labels[0]], 1: [labels[1]]}, {0: [""], 1: [preds[1]]}, verbose=0)
    assert score("bleu", preds, labels).value == pytest.approx(expected[3], abs=1e-12)
    assert score("bleu", [""], ["a b c d e"]).value == 0.0


# German (Multi30k) and Chinese: the expected values call the libraries on tokens written out by hand.
GERMAN_PREDS = ["Ein Mädchen läuft über die Straße.", "Zwei Männer spielen Fußball im Park!", "Ein Hund schläft."]
GERMAN_LABELS = ["Ein Mädchen rennt über die Straße.", '["Zwei Männer spielen Fußball.", "Männer im Park"]', "Hund"]
GERMAN_PRED_TOKENS = [
    ["ein", "mädchen", "läuft", "über", "die", "straße"],
    ["zwei", "männer", "spielen", "fußball", "im", "park"],
    ["ein", "hund", "schläft"],
]
GERMAN_REF_TOKENS = [
    [["ein", "mädchen", "rennt", "über", "die", "straße"]],
    [["zwei", "männer", "spielen", "fußball"], ["männer", "im", "park"]],
    [["hund"]],
]
CHINESE_PREDS = ["一只猫坐在垫子上。", "两个男人在踢足球", "3.5公斤的苹果"]
CHINESE_LABELS = ["一只黑猫坐在垫子上", "两个男人在公园里踢足球。", "3.5公斤苹果"]
CHINESE_PRED_TOKENS = [list("一只猫坐在垫子上"), list("两个男人在踢足球"), ["3.5", *"公斤的苹果"]]
CHINESE_REF_TOKENS = [[list("一只黑猫坐在垫子上")], [list("两个男人在公园里踢足球")], [["3.5", *"公斤苹果"]]]


@pytest.mark.parametrize(
    ("preds", "labels", "hyp_tokens", "ref_tokens"),
    [
        (GERMAN_PREDS, GERMAN_LABELS, GERMAN_PRED_TOKENS, GERMAN_REF_TOKENS),
        (CHINESE_PREDS, CHINESE_LABELS, CHINESE_PRED_TOKENS, CHINESE_REF_TOKENS),
    ],
    ids=["german", "chinese"],
)
def test_non_english_against_libraries(preds, labels, hyp_tokens, ref_tokens) -> None:
    gleu = corpus_gleu(ref_tokens, hyp_tokens)
    assert score("gleu", preds, labels).value == pytest.approx(gleu, abs=1e-12)
    gts = {k: [" ".join(r) for r in refs] for k, refs in enumerate(ref_tokens)}
    res = {k: [" ".join(h)] for k, h in enumerate(hyp_tokens)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert score("bleu", preds, labels).value == pytest.approx(bleu[3], abs=1e-12)
    rouge = sum(Rouge().calc_score(res[k], gts[k]) for k in res) / len(res)
    assert score("rouge_l", preds, labels).value == pytest.approx(rouge, abs=1e-12)
    assert 0 < gleu < 1 and 0 < rouge < 1


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
    expected = Rouge().calc_score([" ".join(cand)], [" ".join(r) for r in refs])
    assert rouge_l_sentence(" ".join(cand), [" ".join(r) for r in refs]) == pytest.approx(expected, abs=1e-12)
