"""Reproducible benchmarks; each prints its figures and ratios against an anchor measured in the same run."""
