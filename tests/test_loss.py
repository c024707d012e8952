"""The VITW reduction against a direct implementation of eq. 2 (token by token, float64)."""

import math

import pytest
import torch

from cotbal_plugin.loss import (
    prepare_targets,
    task_token_counts,
    untasked_token_count,
    vitw_denominator,
    vitw_loss_reference,
    weighted_nll_sum,
)
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


# ---------------------------------------------------------------- new helpers: prepare_targets, counts, untasked
def test_prepare_targets_shift_weights_and_validity():
    # two rows: task 1 and task 0; position t predicts label t+1
    enc = torch.tensor(
        [
            encode_labels([IGNORE_INDEX, 5, 6, IGNORE_INDEX], 1),
            encode_labels([IGNORE_INDEX, IGNORE_INDEX, 3, 4], 0),
        ]
    )
    targets, task_ids, token_weights, valid = prepare_targets(enc, torch.tensor([0.5, 2.0]))
    assert targets.tolist() == [[5, 6, IGNORE_INDEX, IGNORE_INDEX], [IGNORE_INDEX, 3, 4, IGNORE_INDEX]]
    assert valid.tolist() == [[True, True, False, False], [False, True, True, False]]
    assert token_weights.tolist() == [[2.0, 2.0, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0]]
    assert token_weights.dtype == torch.float32
    assert task_ids.min() >= 0 and task_ids.max() <= 1  # clamped: usable as an index everywhere
    assert task_ids[valid].tolist() == [1, 1, 0, 0]


def test_out_of_range_and_unencoded_tokens_are_counted_not_lost():
    # task id 5 with only 2 tasks, and a plain (unencoded) label: both left out of the sums, both counted
    enc = torch.tensor([encode_labels([1, 2, 3], 5), [1, 2, 3], encode_labels([1, 2, 3], 1)])
    counts = task_token_counts(enc, 2)
    assert counts.tolist() == [0.0, 2.0]
    assert float(untasked_token_count(enc, 2)) == 4.0
    logits = torch.randn(3, 3, 4)
    _, nll_sums, counts2 = weighted_nll_sum(logits, enc, torch.ones(2), 2)
    assert counts2.tolist() == [0.0, 2.0] and float(nll_sums[0]) == 0.0


def test_task_weights_length_must_match_num_tasks():
    with pytest.raises(ValueError, match="task_weights has 3 entries for 2 tasks"):
        weighted_nll_sum(torch.randn(1, 3, 4), torch.full((1, 3), IGNORE_INDEX), torch.ones(3), 2)


# ---------------------------------------------------------------- no host-device synchronisation
def _old_weighted_nll_sum(logits, encoded_labels, task_weights, num_tasks):
    """The previous implementation (boolean-mask indexing and bincount): the detectors must flag it."""
    from cotbal_plugin.loss import shift_targets, token_nll
    from cotbal_plugin.task_labels import decode_labels

    targets, task_ids = decode_labels(shift_targets(encoded_labels))
    valid = task_ids >= 0
    targets = torch.where(valid, targets, torch.full_like(targets, IGNORE_INDEX))
    nll = token_nll(logits, targets)
    safe_ids = task_ids.clamp_min(0)
    weighted_sum = (task_weights.to(nll.dtype)[safe_ids] * valid * nll).sum()
    with torch.no_grad():
        flat_ids = safe_ids[valid]
        nll_sums = torch.zeros(num_tasks, dtype=torch.float64).index_add_(0, flat_ids, nll.detach()[valid].double())
        counts = torch.bincount(flat_ids, minlength=num_tasks)[:num_tasks].to(torch.float64)
    return weighted_sum, nll_sums, counts


def _micro_batch_step(fn, logits, encoded, weights, num_tasks):
    """What the trainer does per micro-batch on the full-logits path: sum / denominator, then backward."""
    weighted_sum, nll_sums, counts = fn(logits, encoded, weights, num_tasks)
    loss = weighted_sum / vitw_denominator(task_token_counts(encoded, num_tasks), weights)
    return loss, nll_sums, counts


def test_detector_flags_every_kind_of_sync():
    from cotbal_plugin.testing.syncs import HostSyncDetector

    x = torch.randn(6, 3, requires_grad=True)
    mask = x.detach() > 0
    cases = {
        "x[mask]": lambda: x[mask].sum().backward(),
        "x[mask] = v": lambda: x.detach().clone().__setitem__(mask, 0.0),
        "item": lambda: x.sum().item(),
        "bool": lambda: bool(x.sum() > 0),
        "bincount": lambda: torch.bincount(mask.long().flatten()),
        "nonzero": lambda: mask.nonzero(),
        "unique": lambda: torch.unique(x),
        "masked_select": lambda: x.masked_select(mask),
        "cpu": lambda: x.cpu(),
        "tolist": lambda: x.tolist(),
        "to('cpu')": lambda: x.to("cpu"),
    }
    for name, fn in cases.items():
        with HostSyncDetector() as syncs:
            fn()
        assert syncs.events, f"{name} not detected"

    class SyncInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            g.sum().item()
            return g * 2

    with HostSyncDetector() as syncs:
        SyncInBackward.apply(x).sum().backward()
    assert syncs.events == ["aten._local_scalar_dense.default"]  # seen inside a custom backward too


def test_full_logits_path_has_no_host_sync_and_the_old_one_had():
    from cotbal_plugin.testing.syncs import HostSyncDetector

    logits, _, _, encoded = _batch(0, 3, 9, 11, [0, 1, 2])
    weights = torch.tensor([0.5, 2.0, 1.0])
    for fn, expect_sync in ((weighted_nll_sum, False), (_old_weighted_nll_sum, True)):
        leaf = logits.float().requires_grad_(True)
        with HostSyncDetector() as syncs:
            loss, nll_sums, counts = _micro_batch_step(fn, leaf, encoded, weights, 3)
            loss.backward()
            prepare_targets(encoded, weights)
            untasked_token_count(encoded, 3)
        assert bool(syncs.events) == expect_sync, (fn.__name__, syncs.events)
        if expect_sync:
            assert any("boolean mask" in e for e in syncs.events) and "aten.bincount.default" in syncs.events


def test_full_logits_loss_compiles_fullgraph_without_data_dependent_shapes():
    """torch.compile(fullgraph=True) traces forward and backward into one graph each, with static shapes only.

    Since torch 2.x, fullgraph=True captures ``.item()`` and data-dependent output shapes as *unbacked* symbols
    instead of failing, so the graphs are also checked for unbacked symbols and syncing aten ops (the old
    implementation, with ``bincount`` and boolean masks, produces both). Backend ``aot_eager``: the real
    AOTAutograd forward/backward graphs without inductor's C++ compilation (~80 s on this machine).
    """
    from torch._dynamo.backends.common import aot_autograd
    from torch._functorch.aot_autograd import make_boxed_func
    from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

    from cotbal_plugin.testing.syncs import SYNCING_OPS

    def inspect(fn):
        graphs = []

        def record(gm, example_inputs):
            graphs.append(gm)
            return make_boxed_func(gm.forward)

        torch._dynamo.reset()
        compiled = torch.compile(
            lambda lg, enc, w: _micro_batch_step(fn, lg, enc, w, 3),
            fullgraph=True,
            backend=aot_autograd(fw_compiler=record, bw_compiler=record),
        )
        logits, _, _, encoded = _batch(2, 2, 6, 7, [0, 1, 2])
        leaf = logits.float().requires_grad_(True)
        weights = torch.tensor([0.5, 2.0, 1.0])
        loss, nll_sums, counts = compiled(leaf, encoded, weights)
        loss.backward()
        ref = leaf.detach().clone().requires_grad_(True)
        ref_loss, ref_sums, ref_counts = _micro_batch_step(weighted_nll_sum, ref, encoded, weights, 3)
        ref_loss.backward()
        assert torch.allclose(loss, ref_loss) and torch.allclose(leaf.grad, ref.grad)
        assert torch.allclose(nll_sums, ref_sums) and torch.equal(counts, ref_counts)
        unbacked, ops = [], []
        for gm in graphs:
            for node in gm.graph.nodes:
                val = node.meta.get("val")
                if val is not None and free_unbacked_symbols(val):
                    unbacked.append(node.name)
                if node.op == "call_function" and getattr(node.target, "overloadpacket", None) in SYNCING_OPS:
                    ops.append(str(node.target))
        torch._dynamo.reset()
        return graphs, unbacked, ops

    graphs, unbacked, ops = inspect(weighted_nll_sum)
    assert len(graphs) == 2  # one forward graph, one backward graph: no graph break
    assert unbacked == [] and ops == []
    _, old_unbacked, old_ops = inspect(_old_weighted_nll_sum)
    assert old_unbacked and old_ops == ["aten.bincount.default"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.set_sync_debug_mode")
def test_no_sync_under_cuda_sync_debug_mode():
    from cotbal_plugin.fused_ce import fused_weighted_nll_sum

    logits, _, _, encoded = _batch(4, 2, 16, 32, [0, 1])
    logits, encoded = logits.float().cuda().requires_grad_(True), encoded.cuda()
    hidden = torch.randn(2, 16, 8, device="cuda", requires_grad=True)
    weight = torch.randn(32, 8, device="cuda", requires_grad=True)
    weights = torch.tensor([0.5, 2.0], device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss, _, _ = _micro_batch_step(weighted_nll_sum, logits, encoded, weights, 2)
        loss.backward()
        fused, _, _ = fused_weighted_nll_sum(hidden, weight, encoded, weights, 2, chunk_tokens=8)
        fused.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert torch.isfinite(loss.detach()).all() and torch.isfinite(fused.detach()).all()
