"""iou_acc / miou follow the authors' grounding_bbox.py: first [...], float32 IoU as torchvision, IoU > 0.5."""

from __future__ import annotations

import random

import numpy as np
import pytest

from cotbal_plugin.probe.errors import ProbeError
from cotbal_plugin.probe.metrics import box_iou, box_ious, find_box, parse_box, score


def torchvision_ious(truths: list[list[float]], boxes: list[list[float]]) -> np.ndarray:
    """What the authors' script computes: boxes as torch.tensor (float32), torchvision's IoU, pair by pair."""
    import torch
    from torchvision.ops import box_iou as tv_box_iou

    return tv_box_iou(torch.tensor(truths), torch.tensor(boxes)).diagonal().numpy()


def torchvision_iou(truth: list[float], box: list[float]) -> float:
    return float(torchvision_ious([truth], [box])[0])


def test_first_brackets_as_the_authors_parse_them() -> None:
    assert find_box("[0.1, 0.2, 0.5, 0.6]") == (0.1, 0.2, 0.5, 0.6)
    assert find_box("The box is [10,20, 30 ,40] or [1, 2, 3, 4].") == (10, 20, 30, 40)  # first one
    assert find_box("[[0.1, 0.2, 0.3, 0.4]]") == (0.1, 0.2, 0.3, 0.4)  # inner "[" removed
    assert find_box("no box at all") == (0.0, 0.0, 0.0, 0.0)  # the authors' default
    assert find_box("0.1, 0.2, 0.3, 0.4") == (0.0, 0.0, 0.0, 0.0)  # numbers without brackets are not read
    assert find_box("[the man] at [0.1, 0.2, 0.3, 0.4]") is None  # first [...] is not a box: unparsable
    assert find_box("[1, 2, 3]") is None and find_box("[1, 2, 3, 4, 5]") is None and find_box("[]") is None
    assert find_box("[0.1,\n0.2, 0.3, 0.4] [1, 2, 3, 4]") == (1, 2, 3, 4)  # "." does not cross a line end
    assert find_box("[ 1e-1 , +2 , 3_0 , 4 ]") == (0.1, 2.0, 30.0, 4.0)  # Python float() syntax
    assert parse_box("no box") is None and parse_box("[1, 2, 3, 4]") == (1, 2, 3, 4)


def test_iou_equals_torchvision_float32() -> None:
    rng = random.Random(0)
    truths, boxes = [], []
    for _ in range(300):
        x, y = rng.randint(0, 60) / 100, rng.randint(0, 60) / 100
        truths.append([x, y, x + rng.randint(-5, 40) / 100, y + rng.randint(-5, 40) / 100])  # some inverted
        x, y = rng.randint(0, 60) / 100, rng.randint(0, 60) / 100
        boxes.append([x, y, x + rng.randint(-5, 40) / 100, y + rng.randint(-5, 40) / 100])
    adversarial = [  # empty union (NaN), inverted boxes, negative areas, NaN / inf coordinates, huge values
        ([0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2]),
        ([0.5, 0.5, 0.1, 0.1], [0.1, 0.1, 0.5, 0.5]),
        ([0.1, 0.5, 0.5, 0.1], [0.1, 0.1, 0.5, 0.5]),
        ([0.1, 0.5, 0.5, 0.1], [0.1, 0.5, 0.5, 0.1]),
        ([0.0, 0.0, 1.0, 1.0], [float("nan"), 0.0, 1.0, 1.0]),
        ([0.0, 0.0, 1.0, 1.0], [0.0, 0.0, float("inf"), 1.0]),
        ([0.0, 0.0, 1e39, 1.0], [0.0, 0.0, 1.0, 1.0]),
    ]
    truths += [t for t, _ in adversarial]
    boxes += [b for _, b in adversarial]
    ours = box_ious(np.array(truths), np.array(boxes))
    expected = torchvision_ious(truths, boxes)
    assert expected.dtype == np.float32 and np.isnan(expected).any()  # inverted boxes with an empty union
    np.testing.assert_array_equal(ours, expected)  # same bits (NaN where both are NaN)


# Boxes whose IoU is 0.5 up to rounding: float32 (the authors) and float64 disagree on "> 0.5".
BOUNDARY = [
    # (truth, prediction, float32 IoU > 0.5?)
    ([0.31, 0.06, 0.51, 0.42], [0.31, 0.06, 0.41, 0.42], True),  # float32 0.50000006, float64 0.4999999999999999
    ([0.16, 0.32, 0.48, 0.58], [0.16, 0.32, 0.32, 0.58], False),  # float32 exactly 0.5, float64 0.5000000000000001
    ([0, 0, 2, 1], [0, 0, 1, 1], False),  # IoU exactly 0.5: not a hit (> 0.5)
]


@pytest.mark.parametrize(("truth", "box", "hit"), BOUNDARY)
def test_threshold_strictly_above_half_in_float32(truth: list[float], box: list[float], hit: bool) -> None:
    assert (torchvision_iou(truth, box) > 0.5) is hit  # the reference
    label, pred = str(truth), str(box)
    assert score("iou_acc", [pred], [label]).value == float(hit)


def test_iou_acc_and_miou() -> None:
    preds = ["[0, 0, 1, 1]", "[0, 0, 2, 1]", "no idea", "[0, 0, 2, 2]", "[the box]", "[1, 1, 0, 0]"]
    labels = ["[0, 0, 1, 1]", "[0, 0, 1, 1]", "[0, 0, 1, 1]", "[1, 1, 3, 3]", "[0, 0, 1, 1]", "[0, 0, 1, 1]"]
    # IoUs: 1, 1/2 (not > 0.5), 0 (no box → [0,0,0,0]), 1/7, unparsable (0), inverted box → 0
    acc = score("iou_acc", preds, labels)
    assert acc.value == pytest.approx(1 / 6)
    assert acc.unparsable == 2  # "no idea" (the authors' [0, 0, 0, 0]) and "[the box]" (the authors' script fails)
    miou = score("miou", preds, labels)
    assert miou.value == pytest.approx((1 + 0.5 + 0 + 1 / 7 + 0 + 0) / 6, abs=1e-7)
    assert acc.extra["miou"] == pytest.approx(miou.value)


def test_box_iou_by_hand() -> None:
    assert box_iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)  # inter 1, union 4 + 4 - 1
    assert box_iou([0, 0, 1, 1], [0, 0, 1, 1]) == 1.0
    assert box_iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0
    assert box_iou([1, 1, 1, 1], [1, 1, 1, 1]) == 0.0  # empty union: NaN in the authors' script, 0 here


def test_unparsable_label_is_an_error() -> None:
    with pytest.raises(ProbeError, match=r"label #2 is not a box .*'a cat'; is the metric right"):
        score("iou_acc", ["[0, 0, 1, 1]"] * 2, ["[0, 0, 1, 1]", "a cat"])
    with pytest.raises(ProbeError, match=r"label #1 is not a box"):
        score("miou", ["[0, 0, 1, 1]"], ["[1, 2, 3]"])
