"""Text normalisation and word tokenisation shared by the metrics.

Three tokenisations exist, each belonging to a protocol (see ``docs/metrics.md``):

* **raw** — ``str.split()``: what the authors' caption script feeds pycocoevalcap (``cider``);
* **PTB** — the Stanford PTB tokenizer of the COCO caption evaluation (``cider_coco``, ``bleu_coco``; see
  :mod:`.ptb`);
* **words** — :func:`tokenize` below, for ``bleu``, ``rouge_l``, ``gleu`` and ``cider_words``: Unicode-aware, so that
  German, French, Hindi … keep their words and Chinese / Japanese are split into characters.
"""

from __future__ import annotations

import unicodedata

import regex

# Scripts written without spaces between words: one character = one token (as sacreBLEU's "zh" tokenizer does).
# Other such scripts (Thai, Lao, Khmer, Myanmar) are not segmented: a run of their letters stays one token.
_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}"
# a word character that is neither "_" nor CJK (``regex``'s \w covers letters, combining marks and digits of every
# script; the standard library's ``re`` would split Devanagari words at their vowel signs)
_W = rf"[^\W_{_CJK}]"
_TOKEN = regex.compile(
    rf"[{_CJK}]"  # one CJK character
    # a word: word characters, joined by "." or "," between two digits (3.5, 1,000) or by an apostrophe (don't)
    rf"|{_W}+(?:(?:(?<=\p{{N}})[.,](?=\p{{N}})|'(?={_W})){_W}+)*"
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})


def normalize_em(text: str) -> str:
    """The authors' exact-match normalisation (VisATB ``eval/qa.py``): strip, lower-case, drop one trailing period.

    The period is removed after stripping and nothing is stripped after it: ``"yes ."`` → ``"yes "``.
    """
    return text.strip().lower().removesuffix(".")


def words(text: str) -> list[str]:
    """Word tokens of ``text``: NFKC-normalised, lower-cased, punctuation and symbols dropped.

    A token is a run of letters / marks / digits of any script, which may contain an apostrophe between letters
    (``don't``) or a ``.`` / ``,`` between digits (``3.5``, ``1,000``); each Han, Hiragana or Katakana character is
    a token of its own. ``'Ein Mädchen läuft über die Straße.'`` → ``['ein', 'mädchen', 'läuft', 'über', 'die',
    'straße']``; ``'我有3.5个苹果'`` → ``['我', '有', '3.5', '个', '苹', '果']``.
    """
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower())


def tokenize(text: str) -> str:
    """:func:`words` joined with single spaces (the form pycocoevalcap's scorers and NLTK's GLEU consume)."""
    return " ".join(words(text))
