"""The release artefacts: `python -m build` makes an sdist and, FROM that sdist, a wheel that carries the start-up
``cotbal_plugin.pth`` at the root of site-packages, every module and the ``cotbal`` console script.

Built without build isolation (the test environment's setuptools, no network). Installing that wheel into a fresh
virtual environment and training through it is ``make test-wheel`` (``.ci/test_wheel.sh``), run by CI.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import build  # noqa: F401  (in the test extra; a missing one is an error, not a skip)

    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_wheel_carries_the_pth_file_at_the_root(dist: Path) -> None:
    with zipfile.ZipFile(_one(dist, "cotbal_plugin-*-py3-none-any.whl")) as whl:
        names = set(whl.namelist())
        assert whl.read("cotbal_plugin.pth") == (REPO / "cotbal_plugin.pth").read_bytes()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        assert "cotbal_plugin.pth," in whl.read(record).decode()  # pip installs (and uninstalls) it
        entry_points = whl.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        metadata = Parser().parsestr(whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode())
    assert "cotbal = cotbal_plugin.cli:main" in entry_points
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "cotbal_plugin").rglob("*.py")}
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    assert not [n for n in names if n.startswith("tests/")]
    requires = metadata.get_all("Requires-Dist")
    plain = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("llamafactory") for r in plain)
    assert not any(r.startswith("deepspeed") for r in plain)  # optional, as in LLaMA-Factory
    assert any(r.startswith("deepspeed") and 'extra == "deepspeed"' in r for r in requires)
    assert metadata["Requires-Python"] == ">=3.11"


def test_sdist_holds_what_the_wheel_build_needs(dist: Path) -> None:
    with tarfile.open(_one(dist, "cotbal_plugin-*.tar.gz")) as sdist:
        names = {Path(*Path(n).parts[1:]).as_posix() for n in sdist.getnames() if len(Path(n).parts) > 1}
    assert {"cotbal_plugin.pth", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md"} <= names
    assert {"dataset_info/dataset_info.json", "cotbal_plugin/cli.py"} <= names
    assert not [n for n in names if n.startswith("tests/")]
