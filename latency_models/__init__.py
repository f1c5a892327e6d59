"""Latency measurement, look-up tables and predictors (see the latency-models issue)."""
