"""Benchmarks: scripts run with `python -m bench.<name>`, not tests."""
