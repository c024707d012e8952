"""Helpers to build tiny local models and datasets (tests, benchmarks and the demo; no model hub)."""
