"""The COCO caption protocol: PTB tokens equal pycocoevalcap's; cider_coco / bleu_coco equal COCOEvalCap's steps."""

from __future__ import annotations

import shutil

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.metrics import score
from cotbal_plugin.probe.metrics.ptb import ptb_tokenize

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="the COCO protocol needs Java (not installed)")

CAPTIONS = [
    "A man's dog doesn't (really) run -- fast...",
    'She said "hello" to the U.S. team; they cannot stay.',
    "Two dogs, playing in the grass!",
    "",
    "It costs $3.50 or 1,000 yen: a bargain?",
    "Ein Mädchen läuft über die Straße.",
    "   spaces   around   ",
    "{curly} [square] e-mail 3.5",
]


def pycocoevalcap_tokens(texts: list[str]) -> list[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    out = PTBTokenizer().tokenize({k: [{"caption": t}] for k, t in enumerate(texts)})
    return [out[k][0] for k in range(len(texts))]


@needs_java
def test_tokens_equal_pycocoevalcap() -> None:
    assert ptb_tokenize(CAPTIONS) == pycocoevalcap_tokens(CAPTIONS)
    # the protocol's own quirks, kept: lower-cased bracket tokens escape the (upper-case) drop list
    assert ptb_tokenize(["A (red) car."]) == ["a -lrb- red -rrb- car"]
    assert ptb_tokenize(["don't cannot"]) == ["do n't can not"]


@needs_java
def test_line_breaks_do_not_shift_captions() -> None:
    texts = ["first\u2028line", "second\rline", "third\x0cline\nend", "fourth"]
    assert ptb_tokenize(texts) == ["first line", "second line", "third line end", "fourth"]


@needs_java
def test_cider_coco_and_bleu_coco_follow_cocoevalcap() -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    preds = ["A man riding a bike.", "Two dogs, playing!", "A cat (black) sits."]
    labels = ['["a man riding a bike", "A man rides a bicycle."]', "two dogs playing in the grass", "a black cat sits"]
    gts_raw = {0: ["a man riding a bike", "A man rides a bicycle."], 1: [labels[1]], 2: [labels[2]]}
    # COCOEvalCap.evaluate: tokenise gts and res separately, then each scorer
    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in gts_raw.items()})
    res = tok.tokenize({k: [{"caption": p}] for k, p in enumerate(preds)})
    cider, _ = Cider().compute_score(gts, res)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    assert score("cider_coco", preds, labels).value == pytest.approx(cider, abs=1e-9)
    result = score("bleu_coco", preds, labels)
    assert result.value == pytest.approx(bleu[3], abs=1e-12)
    assert result.extra["bleu1"] == pytest.approx(bleu[0], abs=1e-12)


def test_without_java_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cotbal_plugin.probe.metrics import caption

    monkeypatch.setattr(caption, "_PTB_CACHE", {})
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ProbeError, match=r"needs Java .* install a Java runtime .* or use cider / bleu"):
        score("cider_coco", ["a"], ["a"])
