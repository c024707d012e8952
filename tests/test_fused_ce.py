"""The fused chunked weighted linear cross-entropy against the full-logits path (values, gradients, memory, syncs)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from cotbal_plugin.fused_ce import (
    DEFAULT_CHUNK_BYTES,
    auto_chunk_tokens,
    fused_weighted_linear_ce,
    fused_weighted_nll_sum,
)
from cotbal_plugin.loss import weighted_nll_sum
from cotbal_plugin.task_labels import IGNORE_INDEX, TASK_STRIDE
from cotbal_plugin.testing.syncs import HostSyncDetector

WEIGHTS = torch.tensor([0.5, 2.0, 1.3])


def _problem(seed: int, batch=3, length=37, hidden=16, vocab=50, num_tasks=3, dtype=torch.float32, bias=True):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, length, hidden, generator=g).to(dtype)
    w = (torch.randn(vocab, hidden, generator=g) * 0.3).to(dtype)
    b = torch.randn(vocab, generator=g).to(dtype) if bias else None
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    tasks = torch.randint(0, num_tasks, (batch, length), generator=g)
    encoded = labels + (tasks + 1) * TASK_STRIDE
    encoded[torch.rand(batch, length, generator=g) < 0.3] = IGNORE_INDEX
    return h, w, b, encoded


def _leaves(*tensors):
    return [t.detach().clone().requires_grad_(True) if t is not None else None for t in tensors]


def _full(h, w, b, encoded, weights=WEIGHTS, scale=1.0):
    """The unfused path: logits from the linear layer, then weighted_nll_sum; backward of scale × sum."""
    h, w, b = _leaves(h, w, b)
    s, sums, counts = weighted_nll_sum(F.linear(h, w, b), encoded, weights, weights.numel())
    (s * scale).backward()
    return s.detach(), sums, counts, [t.grad for t in (h, w, b) if t is not None]


def _fused(h, w, b, encoded, weights=WEIGHTS, scale=1.0, chunk=None):
    h, w, b = _leaves(h, w, b)
    s, sums, counts = fused_weighted_nll_sum(h, w, encoded, weights, weights.numel(), bias=b, chunk_tokens=chunk)
    (s * scale).backward()
    return s.detach(), sums, counts, [t.grad for t in (h, w, b) if t is not None]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("chunk", [1, 7, 64, 111, 1000])
@pytest.mark.parametrize("bias", [True, False])
def test_fp32_equals_full_logits_path(chunk, bias):
    h, w, b, enc = _problem(chunk, bias=bias)  # 111 tokens: chunk 111 = one exact chunk, 1000 = one short chunk
    ref = _full(h, w, b, enc, scale=0.7)
    got = _fused(h, w, b, enc, scale=0.7, chunk=chunk)
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-6)
    assert torch.allclose(got[1], ref[1], rtol=1e-6, atol=1e-6)
    assert torch.equal(got[2], ref[2])
    assert len(got[3]) == len(ref[3]) == (3 if bias else 2)
    for g_fused, g_ref in zip(got[3], ref[3]):
        assert _rel(g_fused, g_ref) < 2e-6


def test_result_does_not_depend_on_chunk_size():
    h, w, b, enc = _problem(3)
    results = [_fused(h, w, b, enc, chunk=c) for c in (5, 16, 200)]
    for other in results[1:]:
        assert float(other[0]) == pytest.approx(float(results[0][0]), rel=1e-6)
        for a, c in zip(other[3], results[0][3]):
            assert _rel(a, c) < 2e-6


def test_bf16_no_less_accurate_than_the_unfused_bf16_path():
    """bf16: both paths round the logits and the logits' gradient to bf16 (≈ 3 significant digits), so neither
    matches float64 to better than ~1e-2 relative. The fused path must be at least as close to the float64 truth
    (same bf16 inputs, exact math) as the unfused bf16 path is — it accumulates the weight gradient over chunks in
    float32 and rounds it once, where the unfused bf16 GEMM also rounds once."""
    h, w, b, enc = _problem(5, length=64, hidden=32, vocab=96, dtype=torch.bfloat16)
    truth = _full(h.double(), w.double(), b.double(), enc)
    ref = _full(h, w, b, enc)
    got = _fused(h, w, b, enc, chunk=24)
    assert float(got[0]) == pytest.approx(float(truth[0]), rel=5e-3)
    assert torch.allclose(got[1], truth[1], rtol=5e-3)
    for g_fused, g_ref, g_true in zip(got[3], ref[3], truth[3]):
        assert g_fused.dtype == torch.bfloat16
        err_fused, err_ref = _rel(g_fused, g_true), _rel(g_ref, g_true)
        assert err_fused <= 1.5 * err_ref + 2e-3, (err_fused, err_ref)
        assert err_fused < 2e-2


def test_autocast_matches_unfused_autocast():
    """fp32 master weights under bf16 autocast (LLaMA-Factory's full fine-tuning): logits in bf16, float32
    gradients for the float32 parameters."""
    h, w, b, enc = _problem(6, length=40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = _full(h, w, b, enc)
        got = _fused(h, w, b, enc, chunk=16)
    truth = _full(h, w, b, enc)  # fp32 without autocast
    assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-3)
    for g_fused, g_ref, g_true in zip(got[3], ref[3], truth[3]):
        assert g_fused.dtype == torch.float32
        assert _rel(g_fused, g_true) <= 1.5 * _rel(g_ref, g_true) + 2e-3


class _AllocationRecorder(TorchDispatchMode):
    """Records the shape of every NEW tensor an aten op returns (in-place results and views of an input are not
    new memory and are skipped)."""

    def __init__(self):
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        flat = [*args, *kwargs.values()]
        inputs = {a.untyped_storage().data_ptr() for a in flat if isinstance(a, torch.Tensor)}
        for item in flat:  # tensor lists (e.g. index lists)
            if isinstance(item, list | tuple):
                inputs |= {a.untyped_storage().data_ptr() for a in item if isinstance(a, torch.Tensor)}
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.shapes.append(tuple(t.shape))
        return out


def test_frozen_weight_gets_no_gradient_and_no_weight_sized_buffer():
    h, w, _, enc = _problem(7, bias=False)
    hh = h.clone().requires_grad_(True)
    with _AllocationRecorder() as rec:
        s, _, _ = fused_weighted_nll_sum(hh, w, enc, WEIGHTS, 3, chunk_tokens=16)  # w does not require grad
        s.backward()
    assert w.grad is None
    assert tuple(w.shape) not in rec.shapes  # the float32 accumulator for the weight's gradient was skipped
    ref = _full(h, w, None, enc)
    assert _rel(hh.grad, ref[3][0]) < 2e-6


def test_weight_only_gradient_and_no_grad_mode():
    h, w, _, enc = _problem(8, bias=False)
    ww = w.clone().requires_grad_(True)
    s, _, _ = fused_weighted_nll_sum(h, ww, enc, WEIGHTS, 3, chunk_tokens=16)
    s.backward()
    assert _rel(ww.grad, _full(h, w, None, enc)[3][1]) < 2e-6
    with torch.no_grad():
        s2, sums, counts = fused_weighted_nll_sum(h.requires_grad_(True), ww, enc, WEIGHTS, 3)
    assert not s2.requires_grad and float(s2) == pytest.approx(float(s.detach()), rel=1e-6)
    assert float(counts.sum()) > 0 and not sums.requires_grad


def test_peak_tensor_is_one_chunk_of_logits():
    """Deterministic memory check: no tensor of the fused forward+backward has more than chunk × V elements, and
    in float32 only one per chunk is created, while the full-logits path creates several [tokens, V] ones (sizes
    chosen so H < chunk, i.e. the weight's [V, H] gradient is smaller than one chunk of logits)."""
    tokens, hidden, vocab, chunk = 4 * 64, 24, 300, 32
    h, w, b, enc = _problem(9, batch=4, length=64, hidden=hidden, vocab=vocab)
    hh, ww, bb = _leaves(h, w, b)
    with _AllocationRecorder() as rec:
        s, _, _ = fused_weighted_nll_sum(hh, ww, enc, WEIGHTS, 3, bias=bb, chunk_tokens=chunk)
        s.backward()
    sizes = [torch.Size(shape).numel() for shape in rec.shapes]
    assert max(sizes) == chunk * vocab
    # float32: one [chunk, V] tensor per chunk (the logits); log-sum-exp, soft-max and gradient are in place
    assert sizes.count(chunk * vocab) == tokens // chunk
    with _AllocationRecorder() as rec_full:
        _full(h, w, b, enc)
    assert sum(torch.Size(shape).numel() >= tokens * vocab for shape in rec_full.shapes) >= 3


def test_no_host_sync_in_fused_forward_and_backward():
    h, w, b, enc = _problem(10)
    hh, ww, bb = _leaves(h, w, b)
    with HostSyncDetector() as syncs:
        s, _, _ = fused_weighted_nll_sum(hh, ww, enc, WEIGHTS, 3, bias=bb, chunk_tokens=16)
        (s * 0.5).backward()
    assert syncs.events == []


def test_all_positions_ignored_gives_zero_loss_and_zero_gradients():
    h, w, b, _ = _problem(11)
    enc = torch.full(h.shape[:-1], IGNORE_INDEX)
    hh, ww, bb = _leaves(h, w, b)
    s, sums, counts = fused_weighted_nll_sum(hh, ww, enc, WEIGHTS, 3, bias=bb, chunk_tokens=16)
    s.backward()
    assert float(s) == 0.0 and float(sums.abs().sum()) == 0.0 and float(counts.sum()) == 0.0
    for g in (hh.grad, ww.grad, bb.grad):
        assert torch.isfinite(g).all() and float(g.abs().sum()) == 0.0


def test_second_backward_through_the_same_forward_is_refused():
    h, w, _, enc = _problem(12, bias=False)
    hh = h.clone().requires_grad_(True)
    s, _, _ = fused_weighted_nll_sum(hh, w, enc, WEIGHTS, 3)
    s.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        s.backward()


def test_generic_entry_point_per_token_weights_without_shift():
    """fused_weighted_linear_ce: arbitrary per-position weights, targets already aligned (no shift)."""
    g = torch.Generator().manual_seed(13)
    h = torch.randn(40, 8, generator=g)
    w = torch.randn(30, 8, generator=g)
    targets = torch.randint(0, 30, (40,), generator=g)
    targets[::5] = IGNORE_INDEX
    tw = torch.rand(40, generator=g) * (targets != IGNORE_INDEX)
    s, nll = fused_weighted_linear_ce(h, w, targets, tw, chunk_tokens=9)
    ref_nll = F.cross_entropy(h @ w.T, targets, ignore_index=IGNORE_INDEX, reduction="none")
    assert torch.allclose(nll, ref_nll, rtol=1e-6, atol=1e-6)
    assert float(s) == pytest.approx(float((tw * ref_nll).sum()), rel=1e-6)


def test_shape_errors_name_the_shapes():
    h, w, b, enc = _problem(14)
    with pytest.raises(ValueError, match=r"hidden \(3, 37, 16\), targets \(3, 36\)"):
        fused_weighted_nll_sum(h, w, enc[:, :-1], WEIGHTS, 3)
    with pytest.raises(ValueError, match=r"weight \(50, 15\) must be \[vocab, 16\]"):
        fused_weighted_nll_sum(h, w[:, :-1], enc, WEIGHTS, 3)
    with pytest.raises(ValueError, match="task_weights has 3 entries for 2 tasks"):
        fused_weighted_nll_sum(h, w, enc, WEIGHTS, 2)
    with pytest.raises(ValueError, match="chunk_tokens must be >= 1"):
        fused_weighted_nll_sum(h, w, enc, WEIGHTS, 3, chunk_tokens=0)


@pytest.mark.parametrize("vocab", [1000, 32000, 128256, 152064, 262144, 1_000_000])
def test_auto_chunk_respects_the_budget(vocab):
    chunk = auto_chunk_tokens(vocab)
    assert chunk >= 256
    assert chunk * vocab * 4 <= DEFAULT_CHUNK_BYTES or chunk == 256
    if chunk > 256:
        assert chunk % 64 == 0 and (chunk + 64) * vocab * 4 > DEFAULT_CHUNK_BYTES  # largest such multiple
    assert auto_chunk_tokens(vocab, budget_bytes=DEFAULT_CHUNK_BYTES * 2) >= chunk


def _profiled_peak_bytes(fn, tmp_path) -> int:
    """Peak of torch's CPU allocator over ``fn()`` (all allocations, kernels' internal temporaries included),
    minus what was allocated when it started — from the profiler's ``[memory]`` events."""
    import json

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    events = sorted(
        (e for e in json.loads(path.read_text())["traceEvents"] if e.get("name") == "[memory]"), key=lambda e: e["ts"]
    )
    start = events[0]["args"]["Total Allocated"] - events[0]["args"]["Bytes"]
    return max(e["args"]["Total Allocated"] for e in events) - start


def test_allocator_peak_is_one_float32_chunk_plus_the_gradients(tmp_path):
    """Deterministic allocator accounting (kernel temporaries included, which a dispatch-level recorder cannot
    see — ``torch.logsumexp`` allocates a second [chunk, V] buffer internally): the fused forward+backward peaks at
    one float32 chunk of logits plus the weight-sized float32 gradient and small [tokens]-sized tensors."""
    tokens, hidden, vocab, chunk = 256, 16, 4000, 64
    h, w, _, enc = _problem(15, batch=4, length=64, hidden=hidden, vocab=vocab, bias=False)
    hh, ww = _leaves(h, w)

    def run():
        s, _, _ = fused_weighted_nll_sum(hh, ww, enc, WEIGHTS, 3, chunk_tokens=chunk)
        s.backward()

    run()  # warm-up (lazy initialisations)
    hh.grad = ww.grad = None
    peak = _profiled_peak_bytes(run, tmp_path)
    chunk_bytes = chunk * vocab * 4
    grads_bytes = (vocab + tokens) * hidden * 4
    assert chunk_bytes <= peak <= chunk_bytes + grads_bytes + 64 * 1024, (peak, chunk_bytes, grads_bytes)
    assert peak < 2 * chunk_bytes
