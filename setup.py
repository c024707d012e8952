"""Package metadata of cotbal_plugin.

Besides the package, the wheel ships ``cotbal_plugin.pth`` at the root of site-packages: Python executes it at
start-up, which registers the plugin's import hook in every process (``llamafactory-cli`` and its torchrun /
DeepSpeed children). The hook only patches LLaMA-Factory modules when they are imported and does nothing unless a
YAML says ``loss: cotbal``. Editable installs (``pip install -e .``) get the same file. ``MANIFEST.in`` puts the file
in the sdist, so ``python -m build`` (sdist, then a wheel built from it) carries it too; ``tests/test_wheel.py`` and
``make test-wheel`` check both.
"""

from __future__ import annotations

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "cotbal_plugin.pth"
HERE = os.path.dirname(os.path.abspath(__file__))

# Lower bounds and releases known to break only, so installing the plugin never downgrades a LLaMA-Factory source
# install or a transformers release that LLaMA-Factory accepts. Tested: llamafactory 0.9.5, transformers 5.5.4; the
# plugin warns at start-up on untested versions (cotbal_plugin/llamafactory/versions.py).
LLAMAFACTORY = "llamafactory>=0.9.5"
TRANSFORMERS = "transformers>=4.55.0,!=5.6.0"


def _pth_source() -> str:
    """The start-up file beside setup.py; a build without it would install a plugin that never loads."""
    path = os.path.join(HERE, PTH)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{PTH} is missing next to setup.py ({HERE}); it must be listed in MANIFEST.in")
    return path


class BuildWithPth(build_py):
    """Copy the start-up ``.pth`` file to the root of the built wheel."""

    def run(self) -> None:
        super().run()
        shutil.copy(_pth_source(), os.path.join(self.build_lib, PTH))


class EditableWithPth(editable_wheel):
    """Editable wheels (``pip install -e .``) carry the start-up ``.pth`` file too."""

    def _install_namespaces(self, installation_dir: str, pth_prefix: str) -> None:
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copy(_pth_source(), os.path.join(installation_dir, PTH))


setup(
    name="cotbal_plugin",
    version="0.1.0",
    description="CoTBal task balancing (VITW loss, probe-based task weights) for LLaMA-Factory",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(HERE, "README.md"))
    else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["cotbal_plugin", "cotbal_plugin.*"]),
    install_requires=[
        LLAMAFACTORY,
        TRANSFORMERS,
        "torch>=2.4",
        "peft>=0.18",
        "datasets>=2.16",
        "numpy",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "nltk",
        "pycocoevalcap",
        "regex",  # Unicode-aware word tokens of the text metrics
        "scipy",  # vectorised CIDEr-D (scipy.sparse)
        "pillow",
        "jieba",  # LLaMA-Factory's predict_with_generate metrics import these two
        "rouge-chinese",
    ],
    extras_require={
        "gpu": ["flash-attn>=2.5"],
        # DeepSpeed is optional, as in LLaMA-Factory: only `deepspeed:` runs need it. Install it after torch
        # (`DS_BUILD_OPS=0 pip install --no-build-isolation deepspeed`, or a build with ops for your GPU).
        "deepspeed": ["deepspeed>=0.16"],
        "test": ["pytest", "pytest-xdist", "hypothesis", "ruff", "tensorboard", "build", "deepspeed>=0.16"],
    },
    entry_points={"console_scripts": ["cotbal = cotbal_plugin.cli:main"]},
    cmdclass={"build_py": BuildWithPth, "editable_wheel": EditableWithPth},
)
