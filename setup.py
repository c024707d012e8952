"""Package metadata of cotbal_plugin.

Besides the package, the wheel ships ``cotbal_plugin.pth`` at the root of site-packages: Python executes it at
start-up, which registers the plugin's import hook in every process (``llamafactory-cli`` and its torchrun /
DeepSpeed children). The hook only patches LLaMA-Factory modules when they are imported and does nothing unless a
YAML says ``loss: cotbal``. Editable installs (``pip install -e .``) get the same file.
"""

from __future__ import annotations

import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = "cotbal_plugin.pth"
HERE = os.path.dirname(os.path.abspath(__file__))

# Tested together (see README "Supported versions"); the plugin also checks them at run time.
LLAMAFACTORY = "llamafactory>=0.9.5,<0.9.6"
TRANSFORMERS = "transformers>=5.5.0,<5.6.0"


class BuildWithPth(build_py):
    """Copy the start-up ``.pth`` file to the root of the built wheel."""

    def run(self) -> None:
        super().run()
        shutil.copy(os.path.join(HERE, PTH), os.path.join(self.build_lib, PTH))


class EditableWithPth(editable_wheel):
    """Editable wheels (``pip install -e .``) carry the start-up ``.pth`` file too."""

    def _install_namespaces(self, installation_dir: str, pth_prefix: str) -> None:
        super()._install_namespaces(installation_dir, pth_prefix)
        shutil.copy(os.path.join(HERE, PTH), os.path.join(installation_dir, PTH))


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
        "peft>=0.18,<0.19",
        "datasets>=2.16,<=4.0.0",
        "deepspeed>=0.16",
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
        "test": ["pytest", "pytest-xdist", "hypothesis", "ruff", "tensorboard"],
    },
    entry_points={"console_scripts": ["cotbal = cotbal_plugin.cli:main"]},
    cmdclass={"build_py": BuildWithPth, "editable_wheel": EditableWithPth},
)
