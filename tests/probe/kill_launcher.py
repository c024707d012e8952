"""A ``cotbal run`` launcher that runs ``llamafactory-cli train <yaml>`` and kills it after a checkpoint.

``KILL_AT_CHECKPOINT=K``: as soon as ``<output_dir>/checkpoint-K/trainer_state.json`` exists (transformers writes it
last into a checkpoint), the whole process group of the training is killed with SIGKILL — like a node failure or
a scheduler pre-emption — and this launcher exits 137. Without the variable it only runs the training.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml


def main() -> int:
    yaml_path = sys.argv[1]
    cli = str(Path(sys.executable).parent / "llamafactory-cli")
    proc = subprocess.Popen([cli, "train", yaml_path], start_new_session=True)
    step = os.environ.get("KILL_AT_CHECKPOINT")
    if not step:
        return proc.wait()
    out = Path(yaml.safe_load(Path(yaml_path).read_text(encoding="utf-8"))["output_dir"])
    marker = out / f"checkpoint-{step}" / "trainer_state.json"
    while proc.poll() is None:
        if marker.is_file():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            print(f"kill_launcher: killed the training after {marker.parent.name}", flush=True)
            return 137
        time.sleep(0.005)
    print(f"kill_launcher: the training ended (exit {proc.returncode}) before {marker.parent.name}", flush=True)
    return proc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
