"""Versions of LLaMA-Factory / transformers: what was tested, what is known to break, what is merely untested.

``setup.py`` requires only the lower bounds and excludes the releases known to break, so installing the plugin
never downgrades a LLaMA-Factory source install (e.g. ``0.9.6.dev0`` from main) or a transformers release that
LLaMA-Factory itself accepts. At start-up (``loss: cotbal``) a version known to break is refused; one outside the
tested range only warns, naming the tested versions.
"""

from __future__ import annotations

import warnings
from importlib.metadata import PackageNotFoundError, version

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..weights_file import CotbalConfigError

# package → (tested specifier, required specifier, why the excluded versions break)
TESTED: dict[str, str] = {
    "llamafactory": ">=0.9.5,<0.9.6",
    "transformers": ">=5.5.0,<5.6.0",
}
REQUIRED: dict[str, tuple[str, str]] = {
    "llamafactory": (
        ">=0.9.5",
        "the plugin patches LLaMA-Factory 0.9.5 internals (argument parser, dataset processors, SFT workflow)",
    ),
    "transformers": (
        ">=4.55.0,!=5.6.0",
        "transformers 5.6.0 breaks LLaMA-Factory's training loop (upstream excludes it); older releases lack the "
        "Trainer hooks the plugin relies on",
    ),
}


def installed_version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def check_versions() -> None:
    """Refuse versions known to break and LLaMA-Factory modules that could not be patched (CotbalConfigError);
    warn about untested versions."""
    from .patches import check_patched

    check_patched()
    for package, (required, why) in REQUIRED.items():
        found = installed_version(package)
        if found is None:
            raise CotbalConfigError(f"cotbal_plugin needs {package}{required}; it is not installed.")
        if Version(found) not in SpecifierSet(required, prereleases=True):
            raise CotbalConfigError(
                f"cotbal_plugin needs {package}{required}, found {package}=={found} ({why}). "
                f"Install a supported version: pip install '{package}{TESTED[package]}'."
            )
        if Version(found) not in SpecifierSet(TESTED[package], prereleases=True):
            warnings.warn(
                f"cotbal_plugin was tested with {package}{TESTED[package]}; found {package}=={found}. It should work "
                "(the internals it patches were found), but run the exactness tests "
                "(`make test`) once on this combination.",
                stacklevel=2,
            )
