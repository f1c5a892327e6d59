"""Declarative search spaces and the seed model zoo (``search_spaces.zoo``)."""
