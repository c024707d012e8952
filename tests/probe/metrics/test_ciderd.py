"""The vectorised CIDEr-D against pycocoevalcap's ``Cider`` (the reference), and the ``cider*`` metrics' protocols."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocoevalcap.cider.cider import Cider

from cotbal_plugin.probe.metrics import ciderd as cider_module
from cotbal_plugin.probe.metrics import score
from cotbal_plugin.probe.metrics.ciderd import cider_d, cider_d_scores

WORDS = (
    "a the man woman dog cat red blue green small large sits runs on in near under table street grass car bike "
    "holding wearing two three white black young old standing next to building tree water sky field room"
).split()


@pytest.fixture(params=["packed", "iterative"])
def ngram_path(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of numbering n-grams: one packed sort (vocabulary <= 55,107 words) and one sort per order."""
    if request.param == "iterative":
        monkeypatch.setattr(cider_module, "PACKED_MAX_VOCAB", 0)
    return request.param


def reference(preds: list[str], refs: list[list[str]]) -> tuple[float, np.ndarray]:
    """pycocoevalcap, called the way every caption evaluation calls it."""
    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    value, per_item = Cider().compute_score(gts, res)
    return float(value), np.asarray(per_item)


def assert_same(preds: list[str], refs: list[list[str]]) -> None:
    expected, expected_items = reference(preds, refs)
    items = cider_d_scores(preds, refs)
    np.testing.assert_allclose(items, expected_items, rtol=0, atol=1e-9)
    assert cider_d(preds, refs) == pytest.approx(expected, abs=1e-9)


def random_corpus(rng: random.Random, n: int, max_words: int, max_refs: int, vocab: list[str]) -> tuple[list, list]:
    def sentence() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, max_words)))

    preds = [sentence() for _ in range(n)]
    refs = [[sentence() for _ in range(rng.randint(1, max_refs))] for _ in range(n)]
    if not any(r.split() for rs in refs for r in rs):
        refs[0][0] = vocab[0]  # pycocoevalcap fails when no reference has a token (tested separately)
    return preds, refs


@pytest.mark.parametrize(
    ("n", "max_words", "max_refs", "vocab_size"),
    [(1, 6, 1, 5), (2, 4, 2, 3), (7, 12, 5, 8), (50, 20, 3, 40), (500, 30, 5, 40), (300, 100, 1, 2000)],
)
def test_random_corpora_equal_pycocoevalcap(
    n: int, max_words: int, max_refs: int, vocab_size: int, ngram_path: str
) -> None:
    rng = random.Random(n * 1000 + max_words)
    vocab = WORDS[:vocab_size] if vocab_size <= len(WORDS) else [f"w{k}" for k in range(vocab_size)]
    assert_same(*random_corpus(rng, n, max_words, max_refs, vocab))


def test_adversarial_corpus_equals_pycocoevalcap(ngram_path: str) -> None:
    preds = [
        "",  # empty prediction
        "a",  # one word: no bigram, so length 0 in the Gaussian penalty
        "a a a a a a a a",  # repeated n-grams: clipping of the term frequencies
        "the man rides a bike",  # identical to its reference
        "zebra quokka axolotl",  # n-grams no reference holds (idf = log N)
        "A Man, riding a bike.",  # case and punctuation are tokens of their own
        "the man rides a bike " * 20,  # long: the length penalty vanishes
        "dog dog",
        "über straße 猫 3.5 don't",  # non-ASCII tokens
        "the",  # an n-gram every item's references hold: idf 0, a zero vector
    ]
    refs = [
        ["a man"],
        ["a a", "a"],
        ["a a a", "a"],
        ["the man rides a bike"],
        ["a cat"],
        ["a man riding a bike", "A Man, riding a bike.", ""],  # an empty reference among others
        ["the man rides a bike"],
        ["dog", "dog", "dog"],  # duplicated references
        ["über straße 猫 3.5 don't", "über die straße"],
        [""],  # only an empty reference
    ]
    for k in range(len(refs)):
        refs[k] = [*refs[k], "the"] if k % 2 else refs[k]
    assert_same(preds, refs)


def test_vocabulary_too_large_to_pack() -> None:
    rng = random.Random(7)
    vocab = [f"w{k}" for k in range(cider_module.PACKED_MAX_VOCAB + 10_000)]
    preds = [" ".join(vocab[k * 100 : (k + 1) * 100]) for k in range(602)]  # 60,200 distinct words
    refs = [[" ".join(rng.sample(p.split(), 60) + rng.sample(vocab, 40))] for p in preds]
    assert len({w for p in preds for w in p.split()}) > cider_module.PACKED_MAX_VOCAB
    assert_same(preds, refs)


def test_corpus_where_one_ngram_is_in_every_item() -> None:
    preds, refs = ["the", "the dog"], [["the"], ["the cat"]]  # "the": df = N → idf 0
    assert_same(preds, refs)


tokens = st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=9).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(tokens, st.lists(tokens, min_size=1, max_size=4)), min_size=1, max_size=12))
def test_property_equal_pycocoevalcap(items: list[tuple[str, list[str]]]) -> None:
    preds = [p for p, _ in items]
    refs = [r for _, r in items]
    if not any(r.split() for rs in refs for r in rs):
        assert cider_d(preds, refs) == 0.0  # pycocoevalcap: max() of an empty document frequency table
        return
    assert_same(preds, refs)


def test_no_reference_token_at_all_scores_zero_where_pycocoevalcap_fails() -> None:
    with pytest.raises(ValueError):
        reference(["a b"], [[""]])
    assert cider_d(["a b", "c"], [[""], [" "]]) == 0.0


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 reference lists"):
        cider_d_scores(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="item 1 has no reference"):
        cider_d_scores(["a", "b"], [["a"], []])
    assert cider_d([], []) == 0.0


# --------------------------------------------------------------------------------------------- the protocols

# Captions whose predictions differ from the references only in case and punctuation, and a few real errors.
ADVERSARIAL_LABELS = [
    "a man riding a bike down the street",
    "two dogs playing in the grass",
    "a red car parked near a tree",
    "a woman holding an umbrella in the rain",
    "three birds sitting on a wire",
    "a plate of food on a table",
]
ADVERSARIAL_PREDICTIONS = [
    "A man riding a bike down the street.",
    "Two dogs, playing in the grass!",
    "A red car parked near a tree.",
    "a woman holding an umbrella in the rain",
    "Three birds sitting on a wire.",
    "A cat on a table.",
]


def authors_caption_script(answers: list[dict]) -> float:
    """VisATB eval/caption.py's computation: dicts keyed by id, the raw strings, pycocoevalcap's Cider."""
    truth_dict = {a["id"]: [a["conversations"][1]["value"]] for a in answers}
    pred_dict = {a["id"]: [a["conversations"][1]["generative_value"]] for a in answers}
    value, _ = Cider().compute_score(truth_dict, pred_dict)
    return float(value)


def test_cider_is_the_authors_protocol_on_raw_strings() -> None:
    answers = [
        {"id": f"q{k}", "conversations": [{"value": "Describe."}, {"value": label, "generative_value": pred}]}
        for k, (pred, label) in enumerate(zip(ADVERSARIAL_PREDICTIONS, ADVERSARIAL_LABELS))
    ]
    expected = authors_caption_script(answers)
    assert score("cider", ADVERSARIAL_PREDICTIONS, ADVERSARIAL_LABELS).value == pytest.approx(expected, abs=1e-9)
    # lower-casing and dropping punctuation (the earlier `cider`, now `cider_words`) scores much higher here
    words_value = score("cider_words", ADVERSARIAL_PREDICTIONS, ADVERSARIAL_LABELS).value
    stripped = [p.lower().replace(".", "").replace(",", "").replace("!", "") for p in ADVERSARIAL_PREDICTIONS]
    assert words_value == pytest.approx(reference(stripped, [[x] for x in ADVERSARIAL_LABELS])[0], abs=1e-9)
    assert words_value > 1.5 * expected


def test_cider_several_references_from_a_json_label() -> None:
    labels = ['["a dog runs", "A dog is running."]', '["two cats", "Two cats sleep"]']
    preds = ["A dog runs.", "two cats"]
    expected, _ = reference(preds, [["a dog runs", "A dog is running."], ["two cats", "Two cats sleep"]])
    assert score("cider", preds, labels).value == pytest.approx(expected, abs=1e-9)


def test_cider_german_raw_and_words() -> None:
    preds = ["Ein Mädchen läuft über die Straße.", "Zwei Männer spielen Fußball", "Ein Hund schläft"]
    labels = ["Ein Mädchen läuft über die Straße", "zwei Männer spielen Fußball.", "Eine Katze schläft"]
    expected_raw, _ = reference(preds, [[x] for x in labels])
    assert score("cider", preds, labels).value == pytest.approx(expected_raw, abs=1e-9)
    tokens_p = ["ein mädchen läuft über die straße", "zwei männer spielen fußball", "ein hund schläft"]
    tokens_l = ["ein mädchen läuft über die straße", "zwei männer spielen fußball", "eine katze schläft"]
    expected_words, _ = reference(tokens_p, [[x] for x in tokens_l])
    assert score("cider_words", preds, labels).value == pytest.approx(expected_words, abs=1e-9)


def test_cider_words_chinese_characters() -> None:
    preds = ["一只猫坐在垫子上。", "两个男人在踢足球", "一只狗在睡觉"]
    labels = ["一只猫坐在垫子上", "两个男人在踢球。", "一只猫在睡觉"]
    chars_p = [" ".join(c for c in p if c not in "。") for p in preds]
    chars_l = [" ".join(c for c in x if c not in "。") for x in labels]
    expected, _ = reference(chars_p, [[x] for x in chars_l])
    assert score("cider_words", preds, labels).value == pytest.approx(expected, abs=1e-9)
    assert expected > 0
    # on raw strings a Chinese sentence is one token: only identical sentences (punctuation included) match
    raw, _ = reference(preds, [[x] for x in labels])
    assert score("cider", preds, labels).value == pytest.approx(raw, abs=1e-9)
