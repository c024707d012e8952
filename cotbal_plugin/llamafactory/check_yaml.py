"""Validate job YAMLs with LLaMA-Factory's full argument checks, as ``llamafactory-cli train`` would run them.

``python -m cotbal_plugin.llamafactory.check_yaml [--mode torchrun|single|both] YAML...`` imports LLaMA-Factory once
(with the plugin hook, as the ``.pth`` file does), then for every YAML forks a child that sets ``sys.argv`` the way
``llamafactory-cli train <yaml>`` leaves it for ``run_exp`` and calls ``llamafactory.hparams.get_train_args()`` —
YAML read through OmegaConf, every dataclass ``__post_init__``, every check of ``get_train_args`` (DeepSpeed
ZeRO-3 vs ``predict_with_generate``, ``FORCE_TORCHRUN`` for DeepSpeed, the plugin's own keys, …). Nothing is
loaded (no model, no data), so a hub id or a missing dataset folder does not fail the check.

Modes: ``torchrun`` gives the child the environment ``torchrun`` gives a rank (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``ROLE_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``,
``TORCHELASTIC_*``, and ``FORCE_TORCHRUN=1`` inherited from the launcher) with a world of one process, so
``torch.distributed`` really initialises; ``single`` removes them (``llamafactory-cli`` on one device, no torchrun).

On a machine without a GPU, ``bf16`` / ``fp16`` / ``pure_bf16`` set to true are overridden to false on the command
line (``key=false``, the way ``llamafactory-cli train x.yaml key=value`` overrides) because transformers refuses
them there; every override is reported. Nothing else is changed.

:func:`check_yamls` runs this module in a subprocess and returns one :class:`YamlCheck` per (YAML, mode); the
calling process does not import LLaMA-Factory.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

MODES = ("torchrun", "single")
TORCHRUN_KEYS = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
    "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT",
    "TORCHELASTIC_MAX_RESTARTS", "TORCHELASTIC_RUN_ID", "TORCHELASTIC_USE_AGENT_STORE", "FORCE_TORCHRUN",
    "NPROC_PER_NODE",
)  # fmt: skip
PRECISION_KEYS = ("bf16", "fp16", "pure_bf16")
CHILD_TIMEOUT = 300.0
RESULT_MARK = "COTBAL_CHECK_JSON "


@dataclass
class YamlCheck:
    """The verdict of LLaMA-Factory's ``get_train_args`` on one YAML in one launch mode."""

    path: str
    mode: str
    ok: bool
    error: str = ""
    overrides: list[str] = field(default_factory=list)


def torchrun_env(port: int) -> dict[str, str]:
    """The variables torchrun sets for rank 0 of a one-process job (plus the launcher's FORCE_TORCHRUN)."""
    return {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "GROUP_RANK": "0",
        "GROUP_WORLD_SIZE": "1", "ROLE_RANK": "0", "ROLE_WORLD_SIZE": "1", "ROLE_NAME": "default",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TORCHELASTIC_RESTART_COUNT": "0",
        "TORCHELASTIC_MAX_RESTARTS": "0", "TORCHELASTIC_RUN_ID": "none", "TORCHELASTIC_USE_AGENT_STORE": "False",
        "FORCE_TORCHRUN": "1", "NPROC_PER_NODE": "1",
    }  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _precision_overrides(path: str) -> list[str]:
    """``key=false`` for the precision flags this machine cannot honour (no CUDA device)."""
    import torch
    import yaml

    if torch.cuda.is_available():
        return []
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [f"{key}=false" for key in PRECISION_KEYS if isinstance(data, dict) and data.get(key) is True]


def _warm_up(paths: Sequence[str]) -> None:
    """Import LLaMA-Factory (and, for DeepSpeed YAMLs on a CPU, DeepSpeed's shared-memory op) before forking."""
    import cotbal_plugin

    cotbal_plugin.install()
    from llamafactory.hparams import get_train_args  # noqa: F401

    uses_deepspeed = False
    for path in paths:
        try:
            uses_deepspeed |= "deepspeed:" in Path(path).read_text(encoding="utf-8")
        except OSError:
            pass
    if uses_deepspeed:
        try:  # loading the op once here spares every child the ~2 s load (CPU accelerator only)
            from deepspeed.accelerator import get_accelerator

            builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
            if builder is not None:
                builder.load()
        except Exception:  # noqa: BLE001 - an optimisation only; the children load it themselves
            pass


def _child(path: str, mode: str, overrides: Sequence[str], result_fd: int) -> None:
    os.dup2(2, 1)  # LLaMA-Factory's prints go to stderr; stdout carries the results only
    for key in TORCHRUN_KEYS:
        os.environ.pop(key, None)
    if mode == "torchrun":
        os.environ.update(torchrun_env(_free_port()))
    sys.argv = ["launcher.py", path, *overrides]
    try:
        from llamafactory.hparams import get_train_args

        get_train_args()
        verdict = {"ok": True, "error": ""}
    except BaseException as err:  # noqa: BLE001 - report anything the parser raises
        text = str(err).strip().splitlines()
        verdict = {"ok": False, "error": f"{type(err).__name__}: {text[0] if text else ''}".strip()}
    os.write(result_fd, json.dumps(verdict).encode("utf-8"))
    os.close(result_fd)


def _check_one(path: str, mode: str, timeout: float) -> YamlCheck:
    overrides = _precision_overrides(path)
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            _child(path, mode, overrides, write_fd)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return YamlCheck(path, mode, False, f"TimeoutError: no verdict within {timeout:.0f} s", overrides)
        ready, _, _ = select.select([read_fd], [], [], min(left, 1.0))
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    try:
        verdict = json.loads(b"".join(chunks).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        code = os.waitstatus_to_exitcode(status)
        return YamlCheck(path, mode, False, f"the checking process died (exit {code}) without a verdict", overrides)
    return YamlCheck(path, mode, bool(verdict["ok"]), str(verdict["error"]), overrides)


def _run(items: Sequence[Mapping[str, str]], timeout: float) -> list[YamlCheck]:
    _warm_up([item["path"] for item in items])
    return [_check_one(str(item["path"]), str(item["mode"]), timeout) for item in items]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: check YAMLs (or a JSON list of ``{"path", "mode"}`` on stdin with ``-``); exit 1 when any fails."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cotbal_plugin.llamafactory.check_yaml", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("yamls", nargs="+", help="YAML files, or - to read a JSON list of {path, mode} on stdin")
    parser.add_argument("--mode", choices=[*MODES, "both"], default="torchrun")
    parser.add_argument("--json", action="store_true", help="print the verdicts as one JSON list on stdout")
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help="seconds per YAML")
    args = parser.parse_args(argv)
    if args.yamls == ["-"]:
        items = json.load(sys.stdin)
    else:
        modes = MODES if args.mode == "both" else (args.mode,)
        items = [{"path": p, "mode": m} for p in args.yamls for m in modes]
    results = _run(items, args.timeout)
    if args.json:
        print(RESULT_MARK + json.dumps([asdict(r) for r in results]), flush=True)
    else:
        for r in results:
            extra = f"  (overridden here: {' '.join(r.overrides)})" if r.overrides else ""
            error = "" if r.ok else f"\n    {r.error}"
            print(f"{'ok    ' if r.ok else 'FAILED'} [{r.mode}] {r.path}{extra}{error}")
    return 0 if all(r.ok for r in results) else 1


def check_yamls(
    items: Sequence[tuple[str | Path, str]],
    env: Mapping[str, str] | None = None,
    timeout: float = 1800.0,
    python: str = sys.executable,
    cwd: str | Path | None = None,
) -> list[YamlCheck]:
    """Check ``(yaml, mode)`` pairs in a subprocess (this process does not import LLaMA-Factory).

    Relative paths inside the YAMLs (``deepspeed: examples/...``) resolve against ``cwd``, as for
    ``llamafactory-cli`` started there.

    Raises:
        RuntimeError: the checking process itself failed (LLaMA-Factory not importable, …), with its output tail.
    """
    payload = json.dumps([{"path": str(p), "mode": m} for p, m in items])
    proc = subprocess.run(
        [python, "-m", "cotbal_plugin.llamafactory.check_yaml", "--json", "-"],
        input=payload, capture_output=True, text=True, timeout=timeout, env=dict(env) if env is not None else None,
        cwd=cwd,
    )  # fmt: skip
    lines = [x[len(RESULT_MARK) :] for x in proc.stdout.splitlines() if x.startswith(RESULT_MARK)]
    if not lines:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"the YAML check could not run (exit {proc.returncode}):\n{tail}")
    return [YamlCheck(**row) for row in json.loads(lines[-1])]


if __name__ == "__main__":
    sys.exit(main())
