"""Latency budgets as users type them: ``60ms``, ``60 ms``, ``0.06s``, ``15.8ms``."""

from __future__ import annotations

import math
import re

from nas.errors import BudgetError

__all__ = ["BudgetError", "parse_budget"]

_BUDGET = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|us|µs)\s*$", re.IGNORECASE)
# µ is the micro sign (U+00B5), μ the Greek letter (U+03BC) that most keyboards type and that
# the case-insensitive match also accepts.
_TO_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001, "µs": 0.001, "μs": 0.001}


def parse_budget(text: str) -> float:
    """The budget in milliseconds; anything but a positive number with a unit raises."""
    match = _BUDGET.match(text) if isinstance(text, str) else None
    if not match:
        raise BudgetError(f"latency budget {text!r} not understood: write a number with a "
                          f"unit, e.g. 60ms, 60 ms, 0.06s or 15.8ms")
    value = float(match.group(1)) * _TO_MS[match.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise BudgetError(f"latency budget {text!r} must be greater than zero")
    return value
