"""Benchmarks for vtx: a synthetic fleet-log generator and a split-vs-copy runner."""
