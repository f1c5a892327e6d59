from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.search.budget import BudgetError, parse_budget


@pytest.mark.parametrize(("text", "ms"), [("60ms", 60.0), ("60 ms", 60.0), ("0.06s", 60.0),
                                          ("15.8ms", 15.8), (" 51MS ", 51.0), ("500us", 0.5),
                                          # micro sign, Greek mu, capital mu (the last two
                                          # once a KeyError, found by tests/test_fuzz.py)
                                          ("500µs", 0.5), ("500μs", 0.5), ("500Μs", 0.5)])
def test_budgets_users_type(text, ms):
    assert parse_budget(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "60", "ms", "60 parsecs", "-5ms", "0ms", "1e3ms",
                                  "60ms60ms", "nan ms", "inf ms", "６０ms"])
def test_anything_else_is_one_clear_error(text):
    with pytest.raises(BudgetError, match="latency budget"):
        parse_budget(text)


@given(st.decimals(min_value="0.001", max_value="100000", places=3, allow_nan=False,
                   allow_infinity=False),
       st.sampled_from([("ms", 1.0), ("s", 1000.0), ("us", 0.001)]),
       st.sampled_from(["", " ", "  "]))
def test_any_positive_number_with_a_unit_parses(number, unit, space):
    suffix, factor = unit
    if number == 0:
        return
    text = f"{number}{space}{suffix}"
    assert parse_budget(text) == pytest.approx(float(number) * factor)
    assert parse_budget(text.upper()) == pytest.approx(float(number) * factor)


@given(st.text(max_size=12))
def test_arbitrary_text_parses_or_fails_with_the_one_message(text):
    try:
        value = parse_budget(text)
    except BudgetError as exc:
        assert "latency budget" in str(exc)
    else:
        assert value > 0
