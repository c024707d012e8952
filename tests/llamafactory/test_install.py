"""The .pth start-up hook and the explicit install()."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

PROBE = (
    "import llamafactory.hparams.parser as p, llamafactory.train.sft.workflow as w;"
    "print(p._TRAIN_ARGS[3].__name__, w.CustomSeq2SeqTrainer.__name__)"
)


def _run(code: str, **env: str) -> str:
    full = {**os.environ, "PYTHONWARNINGS": "ignore", **env}
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_pth_file_is_installed_in_site_packages():
    pth = Path(sysconfig.get_paths()["purelib"]) / "cotbal_plugin.pth"
    assert pth.is_file()
    assert "cotbal_plugin._hook" in pth.read_text()


def test_every_process_is_patched_at_start_up():
    assert _run(PROBE) == "CotbalFinetuningArguments trainer_factory"


def test_disable_switch_leaves_llamafactory_untouched():
    assert _run(PROBE, COTBAL_PLUGIN_DISABLE="1") == "FinetuningArguments CustomSeq2SeqTrainer"


def test_explicit_install_after_import_is_idempotent():
    code = (
        "import llamafactory.hparams.parser as p, llamafactory.data.loader as l;"
        "import cotbal_plugin; cotbal_plugin.install(); cotbal_plugin.install();"
        "print(p._TRAIN_ARGS[3].__name__, l.align_dataset.__wrapped__.__module__)"
    )
    assert _run(code, COTBAL_PLUGIN_DISABLE="1") == "CotbalFinetuningArguments llamafactory.data.converter"


def test_importing_the_package_does_not_import_llamafactory_or_torch():
    code = "import sys, cotbal_plugin; print(sorted(m for m in ('torch', 'llamafactory') if m in sys.modules))"
    assert _run(code) == "[]"
