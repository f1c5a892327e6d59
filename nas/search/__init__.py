"""Search: reward, strategies, runner (see the search issue)."""
