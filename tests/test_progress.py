"""Progress bars follow tqdm's convention; --progress / --no-progress / --quiet resolve the same everywhere."""

from __future__ import annotations

import io

import pytest

from cotbal_plugin.progress import bar, resolve


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("progress", "stream", "shown"),
    [
        (None, io.StringIO, False),  # a log file, CI, SLURM: no bar
        (None, Terminal, True),  # an interactive terminal: a bar
        (True, io.StringIO, True),  # --progress forces it
        (False, Terminal, False),  # --no-progress / --quiet
    ],
)
def test_bar_follows_the_setting(progress: bool | None, stream: type, shown: bool) -> None:
    out = stream()
    for _ in bar(range(3), progress=progress, file=out, desc="work"):
        pass
    assert ("work: 100%" in out.getvalue()) is shown


@pytest.mark.parametrize(
    ("progress", "quiet", "expected"),
    [(None, False, None), (None, True, False), (True, True, True), (False, False, False), (True, False, True)],
)
def test_resolve(progress: bool | None, quiet: bool, expected: bool | None) -> None:
    assert resolve(progress, quiet) is expected


def test_tqdm_disable_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("TQDM_DISABLE", "1")
    out = Terminal()
    for _ in bar(range(3), progress=None, file=out, desc="work"):
        pass
    assert out.getvalue() == ""
