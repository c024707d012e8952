"""The metric registry: names, errors, the label convention for several references."""

from __future__ import annotations

import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.metrics import ALIASES, METRICS, get_metric, references, score

# Every name a manifest, a dataset_info.json or a script written for an earlier version may hold.
EARLIER_NAMES = {"em", "vqa", "cider", "bleu", "rouge_l", "gleu", "iou_acc", "miou"}


def test_every_earlier_name_still_works_and_the_new_ones_exist() -> None:
    assert EARLIER_NAMES <= set(METRICS)
    assert {"cider_coco", "bleu_coco", "cider_words"} <= set(METRICS)
    assert list(METRICS)[:3] == ["em", "vqa", "cider"]  # the order error messages list them in


def test_aliases_point_to_real_metrics() -> None:
    assert set(ALIASES.values()) <= set(METRICS)


def test_unknown_metric_names_the_likely_one() -> None:
    with pytest.raises(
        ProbeError, match=r"^unknown metric 'IoU'; valid metrics: em, vqa, .*, miou\. Did you mean 'iou_acc'\?$"
    ):
        get_metric("IoU")
    with pytest.raises(ProbeError, match=r"unknown metric 'CIDEr'; .* Did you mean 'cider'\?$"):
        get_metric("CIDEr")
    with pytest.raises(ProbeError, match=r"unknown metric 'cidr_coco'; .* Did you mean 'cider_coco'\?$"):
        get_metric("cidr_coco")
    with pytest.raises(ProbeError, match=r"^unknown metric 'zzz'; valid metrics: em, vqa, cider.*, miou\.$"):
        get_metric("zzz")


def test_references_from_json_list() -> None:
    assert references('["a", "b"]') == ["a", "b"]
    assert references("[0.1, 0.2, 0.3, 0.4]") == ["[0.1, 0.2, 0.3, 0.4]"]  # a box is one reference
    assert references("[not json") == ["[not json"]
    assert references("[]") == ["[]"]
    assert score("em", ["b"], ['["a", "b"]']).value == 1.0


def test_bad_calls() -> None:
    with pytest.raises(ProbeError, match=r"unknown metric 'accuracy'; valid metrics: em, vqa, .* Did you mean 'em'\?"):
        score("accuracy", ["a"], ["a"])
    with pytest.raises(ProbeError, match="2 predictions but 1 labels"):
        score("em", ["a", "b"], ["a"])
    with pytest.raises(ProbeError, match="no predictions"):
        score("em", [], [])
