import pytest
import torch

from cotbal_plugin.task_labels import (
    IGNORE_INDEX,
    TASK_STRIDE,
    decode_label_list,
    decode_labels,
    encode_labels,
    strip_task_ids,
)


def test_round_trip_keeps_ignored_positions():
    labels = [IGNORE_INDEX, 5, 0, IGNORE_INDEX, TASK_STRIDE - 1]
    enc = encode_labels(labels, 3)
    assert enc[0] == IGNORE_INDEX and enc[3] == IGNORE_INDEX
    assert all(e >= TASK_STRIDE for i, e in enumerate(enc) if labels[i] != IGNORE_INDEX)
    plain, tasks = decode_label_list(enc)
    assert plain == labels
    assert tasks == [-1, 3, 3, -1, 3]
    t_plain, t_tasks = decode_labels(torch.tensor([enc]))
    assert t_plain.tolist() == [labels] and t_tasks.tolist() == [tasks]
    assert strip_task_ids(torch.tensor(enc)).tolist() == labels


def test_unencoded_labels_have_no_task():
    plain, tasks = decode_labels(torch.tensor([[IGNORE_INDEX, 7, 9]]))
    assert plain.tolist() == [[IGNORE_INDEX, 7, 9]]
    assert tasks.tolist() == [[-1, -1, -1]]


@pytest.mark.parametrize("bad", [TASK_STRIDE, TASK_STRIDE * 2 + 1, -5])
def test_refuses_double_encoding_and_garbage(bad):
    with pytest.raises(ValueError):
        encode_labels([bad], 0)
