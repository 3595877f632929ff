"""Benchmarking: latency, accuracy, bundles and reports. Importable without torch (device path)."""
