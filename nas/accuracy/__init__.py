"""Accuracy estimators: how good is an architecture, cheaply (see docs/accuracy.md)."""

from nas.accuracy.base import AccuracyEstimator, Estimate, adapt_spec

__all__ = ["AccuracyEstimator", "Estimate", "adapt_spec"]
