"""The LLaMA-Factory / transformers versions this plugin was tested with."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from packaging.version import Version

from ..weights_file import CotbalConfigError

SUPPORTED: dict[str, tuple[str, str, str, str]] = {
    "llamafactory": (">=", "0.9.5", "<", "0.9.6"),
    "transformers": (">=", "5.5.0", "<", "5.6.0"),
}


def supported_range(package: str) -> str:
    """Human-readable supported range, e.g. ``>=0.9.5,<0.9.6``."""
    op1, lo, op2, hi = SUPPORTED[package]
    return f"{op1}{lo},{op2}{hi}"


def check_versions() -> None:
    """Raise a clear error when an installed package is outside the tested range."""
    for package, (_, lo, _, hi) in SUPPORTED.items():
        try:
            found = version(package)
        except PackageNotFoundError:
            wanted = f"{package}{supported_range(package)}"
            raise CotbalConfigError(f"cotbal_plugin needs {wanted}; it is not installed.") from None
        if not Version(lo) <= Version(found) < Version(hi):
            raise CotbalConfigError(
                f"cotbal_plugin supports {package}{supported_range(package)}, found {package}=={found}. "
                f"Install a supported version: pip install '{package}{supported_range(package)}'."
            )
