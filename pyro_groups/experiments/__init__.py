"""Reproductions of the papers' experiments, shared by the CLI and ``benchmarks/``."""
