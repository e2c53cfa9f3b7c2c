"""Helpers of scripts/benchmark.py: media generation, one module per section, the report."""
