"""Benchmarks: each prints figures and ratios measured in the same run (no timed tests)."""
