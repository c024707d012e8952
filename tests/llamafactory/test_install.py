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


# ------------------------------------------------------------------------------ COTBAL_PLUGIN_DISABLE: one rule

REPO = Path(__file__).resolve().parents[2]
DISABLING = ["1", "true", "TRUE", "True", "yes", "Yes", "on", "ON", " 1 ", "true\n"]
ENABLING = [None, "", "0", "false", "no", "off", "2", "disable", " "]


def test_disable_rule_of_the_hook_function():
    from cotbal_plugin._hook import disabled

    for value in DISABLING:
        assert disabled({"COTBAL_PLUGIN_DISABLE": value}), repr(value)
    for value in ENABLING:
        env = {} if value is None else {"COTBAL_PLUGIN_DISABLE": value}
        assert not disabled(env), repr(value)


def test_disable_rule_of_the_pth_line(tmp_path):
    """The repository's .pth line, processed by `site` as at start-up, follows the same rule as the function.

    ``python -S`` skips the environment's own site-packages (and its installed .pth); ``site.addsitedir`` then
    runs this checkout's line. The line imports ``cotbal_plugin._hook`` only when enabled, and ``autoload()``
    installs the import hook only when enabled, so both halves are observed separately.
    """
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "cotbal_plugin.pth").write_text((REPO / "cotbal_plugin.pth").read_text())
    code = (
        "import sys, site; sys.path.insert(0, sys.argv[1]); site.addsitedir(sys.argv[2]);"
        "hook = sys.modules.get('cotbal_plugin._hook');"
        "print(hook is not None, hook is not None and hook._FINDER in sys.meta_path)"
    )
    for value in DISABLING + ENABLING:
        env = {k: v for k, v in os.environ.items() if k != "COTBAL_PLUGIN_DISABLE"}
        if value is not None:
            env["COTBAL_PLUGIN_DISABLE"] = value
        out = subprocess.run(
            [sys.executable, "-S", "-c", code, str(REPO), str(site_dir)], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        expected = "False False" if value in DISABLING else "True True"
        assert out.stdout.strip() == expected, f"COTBAL_PLUGIN_DISABLE={value!r}: {out.stdout.strip()}"


def test_pth_is_one_import_line():
    """`site` executes a .pth line only when it starts with `import`; the file must stay one line."""
    lines = (REPO / "cotbal_plugin.pth").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("import ")
    from cotbal_plugin._hook import DISABLE_VALUES

    assert repr(DISABLE_VALUES).replace("'", '"') in lines[0]  # the same tuple as the function
