"""Helpers shared by the integration tests: run a config, fail with the log tail."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from cotbal_plugin.testing.workspace import DS_Z2, load_params, run_train, sft_config, write_yaml


def train(ws: Path, name: str, nproc: int = 1, expect_ok: bool = True, model: str = "model", **overrides: Any) -> Any:
    """Train with a config derived from the workspace; return the output folder's parameters (or the process)."""
    if overrides.get("deepspeed") == "z2":
        ds = ws / "ds_z2.json"
        ds.write_text(json.dumps(DS_Z2))
        overrides["deepspeed"] = str(ds)
    if nproc > 1:
        overrides.setdefault("ddp_backend", "gloo")
    out = ws / "runs" / name
    config = sft_config(ws / model, ws / "data", out, **overrides)
    path = write_yaml(ws / "yaml" / f"{name}.yaml", config)
    proc = run_train(path, nproc=nproc)
    if nproc > 1 and proc.returncode != 0 and "SIGABRT" in proc.stdout:
        # Known flake on the 2-core CI machine: roughly one torchrun start in several, a gloo rank aborts in C++
        # (SIGABRT) before training; not reproducible in isolation. Keep the log, warn, retry once; a Python
        # error or a second abort still fails the test.
        (ws / "runs" / f"{name}.attempt1.log").write_text(proc.stdout)
        warnings.warn(f"torchrun run {name} aborted (SIGABRT); retrying once", stacklevel=2)
        proc = run_train(path, nproc=nproc)
    if not expect_ok:
        return proc
    if proc.returncode != 0:
        (ws / "runs" / f"{name}.log").write_text(proc.stdout)
        keys = ("Error", "error", "terminate", "what()", "Abort", "gloo")
        errors = [line for line in proc.stdout.splitlines() if any(k in line for k in keys)][:60]
        raise AssertionError(f"run {name} failed:\n" + "\n".join(errors) + "\n...\n" + proc.stdout[-3000:])
    if overrides.get("do_train", True) is False:
        return proc
    return load_params(out)


def trainer_logs(ws: Path, name: str) -> list[dict[str, Any]]:
    """Training log lines (those with a `loss`) of run ``name``."""
    history = json.loads((ws / "runs" / name / "trainer_state.json").read_text())["log_history"]
    return [h for h in history if "loss" in h]
