"""Benchmarks: each prints ours beside a baseline in one run (ratios, not absolute times)."""
