from __future__ import annotations

import pytest

from nas.search.budget import BudgetError, parse_budget


@pytest.mark.parametrize(("text", "ms"), [("60ms", 60.0), ("60 ms", 60.0), ("0.06s", 60.0),
                                          ("15.8ms", 15.8), (" 51MS ", 51.0), ("500us", 0.5)])
def test_budgets_users_type(text, ms):
    assert parse_budget(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "60", "ms", "60 parsecs", "-5ms", "0ms", "1e3ms",
                                  "60ms60ms", "nan ms", "inf ms", "６０ms"])
def test_anything_else_is_one_clear_error(text):
    with pytest.raises(BudgetError, match="latency budget"):
        parse_budget(text)
