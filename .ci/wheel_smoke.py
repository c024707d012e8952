"""Smoke test of an INSTALLED cotbal_plugin wheel (run by ``.ci/test_wheel.sh`` with the fresh venv's python).

Run from outside the repository, without PYTHONPATH, so that only the installed package can be imported. Checks:

1. ``cotbal_plugin`` and its start-up file ``cotbal_plugin.pth`` come from this environment's site-packages;
2. the ``cotbal`` console script works;
3. the installed ``.pth`` honours ``COTBAL_PLUGIN_DISABLE`` (``0`` keeps the plugin on, ``yes`` turns it off);
4. ``llamafactory-cli train`` with ``loss: cotbal`` on a tiny local Llama trains through the installed hook and logs
   ``task_loss/<task>`` and ``task_weight/<task>`` (the plugin acted) with the weights of ``weights.json``.

Usage: python wheel_smoke.py WORKDIR
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

PATCH_PROBE = "import llamafactory.hparams.parser as p; print(p._TRAIN_ARGS[3].__name__)"
TASKS = {"short": 1, "long": 12}
WEIGHTS = {"short": 2.0, "long": 0.5}


def check(condition: bool, message: str) -> None:
    """Fail the smoke test with one line naming what went wrong."""
    if not condition:
        print(f"wheel smoke test FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without anything that could import the source tree instead of the installed wheel."""
    from cotbal_plugin.testing.workspace import cli_env

    env = cli_env(**extra)
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"):
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def main(workdir: Path) -> None:
    """Run the checks; exit 1 with a message at the first failure."""
    t0 = time.perf_counter()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    check("PYTHONPATH" not in os.environ, "PYTHONPATH is set; the smoke test must see only the installed wheel")
    import cotbal_plugin

    where = Path(cotbal_plugin.__file__).resolve()
    check(where.is_relative_to(site), f"cotbal_plugin imported from {where}, not from {site}")
    pth = site / "cotbal_plugin.pth"
    check(pth.is_file(), f"{pth} is missing: the wheel did not install the start-up file")
    print(f"ok  cotbal_plugin {cotbal_plugin.__version__} from {where.parent}; {pth.name} in site-packages")

    bin_dir = Path(sys.executable).parent
    out = subprocess.run([str(bin_dir / "cotbal"), "--version"], capture_output=True, text=True, env=clean_env())
    check(out.returncode == 0 and cotbal_plugin.__version__ in out.stdout, f"`cotbal --version`: {out}")
    print(f"ok  {out.stdout.strip()}")

    for value, expected in (("0", "CotbalFinetuningArguments"), ("yes", "FinetuningArguments")):
        env = clean_env(COTBAL_PLUGIN_DISABLE=value)
        probe = subprocess.run([sys.executable, "-c", PATCH_PROBE], capture_output=True, text=True, env=env)
        got = probe.stdout.strip().splitlines()[-1:] or [probe.stderr[-500:]]
        check(got == [expected], f"COTBAL_PLUGIN_DISABLE={value}: LLaMA-Factory has {got}, expected {expected}")
        print(f"ok  COTBAL_PLUGIN_DISABLE={value}: {expected}")

    from cotbal_plugin.testing.tiny import build_tiny_llama
    from cotbal_plugin.testing.workspace import all_text, sft_config, write_text_tasks, write_yaml

    write_text_tasks(workdir / "data", TASKS, n=8)
    build_tiny_llama(workdir / "model", all_text(TASKS, n=8))
    (workdir / "weights.json").write_text(json.dumps({"weights": WEIGHTS}), encoding="utf-8")
    run_dir = workdir / "run"
    config = sft_config(
        workdir / "model", workdir / "data", run_dir, dataset="short,long", max_steps=2, per_device_train_batch_size=8,
        loss="cotbal", cotbal_weights=str(workdir / "weights.json"),
    )  # fmt: skip
    yaml_path = write_yaml(workdir / "train.yaml", config)
    t1 = time.perf_counter()
    proc = subprocess.run(
        [str(bin_dir / "llamafactory-cli"), "train", str(yaml_path)],
        env=clean_env(), cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
    )  # fmt: skip
    check(proc.returncode == 0, f"llamafactory-cli train exited {proc.returncode}:\n{proc.stdout[-4000:]}")
    history = json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
    logged = {k: v for entry in history for k, v in entry.items() if k.startswith(("task_loss/", "task_weight/"))}
    for task, weight in WEIGHTS.items():
        check(f"task_loss/{task}" in logged, f"no task_loss/{task} in trainer_state.json: the plugin did not act")
        check(logged.get(f"task_weight/{task}") == weight, f"task_weight/{task} = {logged.get(f'task_weight/{task}')}")
    print(f"ok  llamafactory-cli train with loss: cotbal logged {sorted(logged)} ({time.perf_counter() - t1:.0f} s)")
    print(f"wheel smoke test passed in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    main(Path(sys.argv[1]).resolve())
