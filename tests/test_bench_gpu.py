"""benchmarks/bench_gpu.py --smoke: the GPU benchmark script runs end to end on CPU (tiny model, 2 steps per run)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_smoke_run_writes_ratios_and_says_what_it_skipped(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke", "--modes", "lora"]
    cmd += ["--work", str(tmp_path / "work"), "--out-dir", str(tmp_path / "out")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "bench_gpu_smoke.json").read_text())
    lora = result["summary"]["lora"]
    has_liger = importlib.util.find_spec("liger_kernel") is not None
    if has_liger:  # on CPU the Triton kernels cannot run: the script must say it skipped them
        assert "need a GPU" in result["meta"]["skipped"]
    else:
        assert result["meta"]["skipped"] == "Liger variants (liger-kernel is not installed)"
        assert "skipping Liger variants (liger-kernel is not installed)" in proc.stdout
    assert set(lora) == {"stock", "cotbal"}
    for entry in lora.values():
        (run,) = entry["runs"]
        assert run["timed_steps"] == 2 and all(t > 0 for t in run["step_s"])
        assert run["peak_bytes"] > 0 and run["peak_kind"] == "RSS high-water mark"
        assert run["train_loss"] > 0
        assert entry["time_ratio_paired_median"] == pytest.approx(
            run["median_step_s"] / lora["stock"]["runs"][0]["median_step_s"]
        )
    assert lora["stock"]["time_ratio_paired_median"] == 1.0
    markdown = (tmp_path / "out" / "bench_gpu_smoke.md").read_text()
    assert "## lora" in markdown and "| cotbal |" in markdown and "Skipped: Liger variants" in markdown
