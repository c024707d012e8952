"""Version policy: known-bad versions refused, untested ones warn, tested ones pass silently."""

from __future__ import annotations

import types
import warnings

import pytest

from cotbal_plugin.llamafactory import patches, versions
from cotbal_plugin.weights_file import CotbalConfigError


def _fake(monkeypatch, **found):
    monkeypatch.setattr(versions, "installed_version", lambda package: found.get(package))


def test_tested_versions_pass_silently(monkeypatch):
    _fake(monkeypatch, llamafactory="0.9.5", transformers="5.5.4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        versions.check_versions()


@pytest.mark.parametrize(
    ("found", "pattern"),
    [
        (
            {"llamafactory": "0.9.4", "transformers": "5.5.4"},
            r"found llamafactory==0\.9\.4",
        ),
        ({"llamafactory": "0.9.5", "transformers": "5.6.0"}, r"found transformers==5\.6\.0"),
        ({"llamafactory": "0.9.5", "transformers": "4.50.0"}, r"found transformers==4\.50\.0"),
        ({"transformers": "5.5.4"}, r"needs llamafactory>=0\.9\.5; it is not installed"),
    ],
)
def test_known_bad_versions_refused(monkeypatch, found, pattern):
    _fake(monkeypatch, **found)
    with pytest.raises(CotbalConfigError, match=pattern):
        versions.check_versions()


@pytest.mark.parametrize(
    "found",
    [
        {"llamafactory": "0.9.6.dev0", "transformers": "5.5.4"},  # a source install of LLaMA-Factory main
        {"llamafactory": "0.9.5", "transformers": "5.7.1"},
        {"llamafactory": "0.9.5", "transformers": "4.57.1"},
    ],
)
def test_untested_versions_warn_and_name_the_tested_ones(monkeypatch, found):
    _fake(monkeypatch, **found)
    with pytest.warns(
        UserWarning, match=r"tested with (llamafactory>=0\.9\.5,<0\.9\.6|transformers>=5\.5\.0,<5\.6\.0)"
    ):
        versions.check_versions()


def test_setup_py_never_pins_an_upper_bound():
    """Installing the plugin must not downgrade LLaMA-Factory main or a transformers release LLaMA-Factory accepts."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "setup.py").read_text()
    assert 'LLAMAFACTORY = "llamafactory>=0.9.5"' in text
    assert 'TRANSFORMERS = "transformers>=4.55.0,!=5.6.0"' in text


def test_unpatchable_module_is_reported_only_for_cotbal(monkeypatch):
    monkeypatch.setattr(patches, "INCOMPATIBLE", {})
    module = types.ModuleType("llamafactory.data.loader")  # a release that renamed every hooked function
    assert patches._once(module) is False  # left untouched: stock runs keep working
    assert patches.INCOMPATIBLE == {"llamafactory.data.loader": list(patches.REQUIRED_NAMES[module.__name__])}
    with pytest.raises(CotbalConfigError, match=r"llamafactory\.data\.loader lacks get_dataset_list"):
        patches.check_patched()
