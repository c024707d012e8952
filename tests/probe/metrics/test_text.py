"""Normalisation and the Unicode word tokeniser."""

from __future__ import annotations

from cotbal_plugin.probe.metrics.text import normalize_em, tokenize, words


def test_em_normalisation_as_the_authors_qa_script() -> None:
    # VisATB eval/qa.py: strip, lower(), then drop one '.' if it is the last character
    assert normalize_em("  Yes. ") == "yes"
    assert normalize_em("yes..") == "yes."  # only one trailing period
    assert normalize_em("yes .") == "yes "  # the period goes, the space before it stays (no second strip)
    assert normalize_em("Two") == "two"
    assert normalize_em(" . ") == ""
    assert normalize_em("3.") == "3" and normalize_em("3.5") == "3.5"


def test_german_keeps_its_words() -> None:
    assert words("Ein Mädchen läuft über die Straße.") == ["ein", "mädchen", "läuft", "über", "die", "straße"]
    assert tokenize("Zwei Männer, die Fußball spielen!") == "zwei männer die fußball spielen"


def test_numbers_stay_whole() -> None:
    assert words("It costs 3.5 dollars, about 1,000.25 yen; x.5 is not a number.") == [
        "it", "costs", "3.5", "dollars", "about", "1,000.25", "yen", "x", "5", "is", "not", "a", "number",
    ]  # fmt: skip
    assert words("end.Next") == ["end", "next"]


def test_apostrophes_inside_words() -> None:
    assert words("Don't stop — the dogs' rock'n'roll") == ["don't", "stop", "the", "dogs", "rock'n'roll"]
    assert words("don\u2019t") == ["don't"]  # typographic apostrophe = straight one


def test_chinese_and_japanese_split_into_characters() -> None:
    assert words("一只猫坐在垫子上。") == ["一", "只", "猫", "坐", "在", "垫", "子", "上"]
    assert words("我有3.5个iPhone，很好") == ["我", "有", "3.5", "个", "iphone", "很", "好"]
    assert words("ねこがいる") == ["ね", "こ", "が", "い", "る"]


def test_other_scripts_keep_their_words() -> None:
    assert words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # vowel signs are combining marks, part of the word
    assert words("한국어 문장") == ["한국어", "문장"]
    assert words("Ελληνικά κείμενα") == ["ελληνικά", "κείμενα"]


def test_compatibility_forms_and_underscores() -> None:
    assert words("ｆｕｌｌ３ ﬁne") == ["full3", "fine"]  # NFKC: full-width letters, ligatures
    assert words("snake_case e-mail") == ["snake", "case", "e", "mail"]
    assert words("") == [] and words(" ... !") == []
