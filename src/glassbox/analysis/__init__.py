"""Measurements at snapshots and the analysis suites: compositions of the pure probes over a model's hook points."""
