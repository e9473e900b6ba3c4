"""Benchmark scripts (not tests); `python -m benchmarks` runs them all. See docs/benchmarks.md."""
