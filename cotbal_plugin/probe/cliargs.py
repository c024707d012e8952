"""Parsing helpers for the ``cotbal`` sub-commands (``TASK=VALUE`` options, fractions, name lists)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from fractions import Fraction

from .errors import ProbeError


def names(values: Iterable[str] | None) -> list[str]:
    """Flatten repeated and comma-separated names: ``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip()]
    return out


def key_values(values: Iterable[str] | None, option: str) -> dict[str, list[str]]:
    """Parse repeated ``KEY=V1[,V2...]`` options into ``{KEY: [V1, V2, ...]}`` (repeats of a key accumulate)."""
    out: dict[str, list[str]] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        items = [v.strip() for v in rest.split(",") if v.strip()]
        if not sep or not key.strip() or not items:
            raise ProbeError(f"{option} expects KEY=VALUE[,VALUE...], got {value!r}.")
        out.setdefault(key.strip(), []).extend(items)
    return out


def key_floats(values: Iterable[str] | None, option: str) -> dict[str, float]:
    """Parse repeated ``KEY=NUMBER`` options."""
    out: dict[str, float] = {}
    for key, items in key_values(values, option).items():
        if len(items) != 1:
            raise ProbeError(f"{option} expects one number for {key!r}, got {items}.")
        out[key] = parse_number(items[0], f"{option} {key}")
    return out


def parse_number(text: str, what: str) -> float:
    """A finite float, also written as a fraction (``1/32``)."""
    try:
        value = float(Fraction(text.strip())) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise ProbeError(f"{what}: {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise ProbeError(f"{what}: {text!r} is not a finite number.")
    return value


def fraction_arg(text: str) -> float:
    """argparse ``type=`` for fractions such as ``0.25`` or ``1/32``."""
    try:
        return parse_number(text, "fraction")
    except ProbeError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def fixed_tasks(values: Iterable[str] | None, option: str = "--fixed") -> dict[str, float]:
    """Parse ``--fixed TASK[=WEIGHT]`` (repeatable, comma-separated): ``{task: weight}``, weight 1.0 by default.

    The same spelling in ``cotbal plan`` and ``cotbal weights``. Weights must be finite and > 0 (the trainer
    refuses anything else in weights.json).
    """
    out: dict[str, float] = {}
    for value in values or []:
        for item in (v.strip() for v in value.split(",")):
            if not item:
                continue
            name, sep, text = (part.strip() for part in item.partition("="))
            if not name or (sep and not text):
                raise ProbeError(f"{option} expects TASK or TASK=WEIGHT (e.g. sharegpt=1.0), got {item!r}.")
            weight = parse_number(text, f"{option} {name}") if sep else 1.0
            if weight <= 0:
                raise ProbeError(f"{option} {name}: weight {text} must be > 0 (drop the task from training instead).")
            if name in out and out[name] != weight:
                raise ProbeError(f"{option} gives task {name!r} two weights ({out[name]:g} and {weight:g}); give one.")
            out[name] = weight
    return out
