"""The VITW reduction against a direct implementation of eq. 2 (token by token, float64)."""

import math

import pytest
import torch

from cotbal_plugin.loss import task_token_counts, vitw_denominator, vitw_loss_reference, weighted_nll_sum
from cotbal_plugin.task_labels import IGNORE_INDEX, encode_labels


def _batch(seed: int, batch: int, length: int, vocab: int, tasks: list[int], p_ignore: float = 0.4):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=g, dtype=torch.float64)
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    labels[torch.rand(batch, length, generator=g) < p_ignore] = IGNORE_INDEX
    task_rows = torch.tensor([tasks[i % len(tasks)] for i in range(batch)])
    task_ids = task_rows[:, None].expand(batch, length)
    encoded = torch.tensor([encode_labels(labels[b].tolist(), int(task_rows[b])) for b in range(batch)])
    return logits, labels, task_ids, encoded


def _direct_eq2(micro_batches, weights):
    """Eq. 2 over all micro-batches at once, written out with Python loops."""
    num, den = 0.0, 0.0
    for logits, labels, task_ids, _ in micro_batches:
        logp = torch.log_softmax(logits.double(), -1)
        for b in range(labels.size(0)):
            for t in range(labels.size(1) - 1):
                y = int(labels[b, t + 1])
                if y == IGNORE_INDEX:
                    continue
                lam = float(weights[int(task_ids[b, t + 1])])
                num += -lam * float(logp[b, t, y])
                den += lam
    return num / den


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_eq2_over_micro_batches_with_absent_tasks(seed):
    weights = torch.tensor([2.0, 0.5, 1.3])
    # task 2 only appears in the second micro-batch; task 0 only in the first
    micro = [_batch(seed, 3, 7, 11, [0, 1]), _batch(seed + 10, 2, 5, 11, [1, 2])]
    counts = sum(task_token_counts(m[3], 3) for m in micro)
    denom = vitw_denominator(counts, weights)
    total = sum(weighted_nll_sum(m[0], m[3], weights, 3)[0] for m in micro) / denom
    assert float(total) == pytest.approx(_direct_eq2(micro, weights), rel=1e-6)


def test_single_batch_reference_agrees():
    logits, labels, task_ids, encoded = _batch(5, 4, 9, 13, [0, 1, 2])
    weights = torch.tensor([1.0, 3.0, 0.2])
    ref = vitw_loss_reference(logits, labels, task_ids, weights)
    s, _, counts = weighted_nll_sum(logits, encoded, weights, 3)
    assert float(s / vitw_denominator(counts, weights)) == pytest.approx(float(ref), rel=1e-6)
    assert float(ref) == pytest.approx(_direct_eq2([(logits, labels, task_ids, encoded)], weights), rel=1e-9)


def test_per_task_sums_and_counts():
    logits, labels, task_ids, encoded = _batch(3, 4, 6, 5, [0, 1])
    _, nll_sums, counts = weighted_nll_sum(logits, encoded, torch.ones(2), 2)
    logp = torch.log_softmax(logits.double(), -1)
    for task in (0, 1):
        exp_sum, exp_n = 0.0, 0
        for b in range(4):
            for t in range(5):
                y = int(labels[b, t + 1])
                if y != IGNORE_INDEX and int(task_ids[b, t + 1]) == task:
                    exp_sum -= float(logp[b, t, y])
                    exp_n += 1
        assert float(counts[task]) == exp_n
        assert float(nll_sums[task]) == pytest.approx(exp_sum, rel=1e-6)


def test_equal_weights_is_token_mean():
    logits, labels, _, encoded = _batch(7, 3, 8, 9, [0, 1])
    s, _, counts = weighted_nll_sum(logits, encoded, torch.ones(2), 2)
    stock = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 9), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX
    )
    assert float(s / vitw_denominator(counts, torch.ones(2))) == pytest.approx(float(stock), rel=1e-6)


def test_micro_batch_without_valid_tokens_is_finite_and_has_zero_gradient():
    logits = torch.randn(2, 4, 6, requires_grad=True)
    encoded = torch.full((2, 4), IGNORE_INDEX)
    s, nll_sums, counts = weighted_nll_sum(logits, encoded, torch.ones(3), 3)
    loss = s / vitw_denominator(counts, torch.ones(3))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() == 0.0
    assert torch.isfinite(logits.grad).all() and float(logits.grad.abs().sum()) == 0.0
    assert counts.tolist() == [0.0, 0.0, 0.0] and nll_sums.tolist() == [0.0, 0.0, 0.0]


def test_gradient_matches_direct_formula():
    logits, labels, task_ids, encoded = _batch(11, 2, 6, 7, [0, 1])
    weights = torch.tensor([0.7, 1.9])
    a = logits.clone().requires_grad_(True)
    s, _, counts = weighted_nll_sum(a, encoded, weights, 2)
    (s / vitw_denominator(counts, weights)).backward()
    b = logits.clone().requires_grad_(True)
    vitw_loss_reference(b, labels, task_ids, weights).backward()
    assert torch.allclose(a.grad.double(), b.grad, atol=1e-6)
