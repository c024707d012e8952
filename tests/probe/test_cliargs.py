"""Option parsing helpers: ``--fixed TASK[=WEIGHT]`` (the same in `cotbal plan` and `cotbal weights`)."""

from __future__ import annotations

import pytest

from cotbal_plugin.probe.cliargs import fixed_tasks
from cotbal_plugin.probe.errors import ProbeError


def test_fixed_tasks_spellings() -> None:
    assert fixed_tasks(None) == {}
    assert fixed_tasks(["sharegpt"]) == {"sharegpt": 1.0}
    assert fixed_tasks(["sharegpt=0.5", "chat"]) == {"sharegpt": 0.5, "chat": 1.0}
    assert fixed_tasks(["a, b=2,c=1/4"]) == {"a": 1.0, "b": 2.0, "c": 0.25}
    assert fixed_tasks(["a=1", "a"]) == {"a": 1.0}  # the same weight twice is fine


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        ("=1", r"--fixed expects TASK or TASK=WEIGHT \(e\.g\. sharegpt=1\.0\), got '=1'"),
        ("a=", "expects TASK or TASK=WEIGHT"),
        ("a=x", "--fixed a: 'x' is not a number"),
        ("a=nan", "not a finite number"),
        ("a=0", r"--fixed a: weight 0 must be > 0"),
        ("a=-2", "must be > 0"),
    ],
)
def test_fixed_tasks_errors(value: str, pattern: str) -> None:
    with pytest.raises(ProbeError, match=pattern):
        fixed_tasks([value])


def test_fixed_tasks_conflicting_weights() -> None:
    with pytest.raises(ProbeError, match=r"gives task 'a' two weights \(1 and 2\)"):
        fixed_tasks(["a", "a=2"])
