"""Demo helpers: a tiny synthetic multi-task visual benchmark (:mod:`cotbal_plugin.demo.shapes`)."""

from .shapes import make_shapes_benchmark, vocabulary

__all__ = ["make_shapes_benchmark", "vocabulary"]
