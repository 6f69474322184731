"""Reproducible benchmarks writing JSON to bench/results/."""
