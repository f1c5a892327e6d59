"""The errors a user can cause, one family under :class:`NasError`.

A ``NasError`` says what was wrong with an input (an option, a file, a spec, a run directory)
and what to do about it; the command line prints its message as one line and exits with code 2.
Anything else that escapes a command is a bug and is reported as one, with its traceback.

Every class here is also a ``ValueError``, as each of them was before the family existed, so
code that catches ``ValueError`` around a bad input keeps working. Raise the class of the
stage that found the problem; add a class only where a caller needs to tell it apart.
"""

from __future__ import annotations

import re

__all__ = [
    "BudgetError",
    "BuildError",
    "DataError",
    "EstimatorError",
    "ExportError",
    "LatencyError",
    "MissingLayers",
    "NasError",
    "NetAdaptError",
    "PruneError",
    "ResumeMismatch",
    "RewardError",
    "RunError",
    "RunLocked",
    "SpecError",
    "StrategyError",
    "TableError",
    "TableMismatch",
    "first_line",
]


class NasError(Exception):
    """Base of every error a user can cause; its message is meant for them."""


# --------------------------------------------------------------------------- networks
class SpecError(NasError, ValueError):
    """An invalid architecture spec. ``field`` names where (``blocks[3].kernel``)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}" if field else message)

    def within(self, prefix: str) -> SpecError:
        """The same error, located inside ``prefix`` (a block index, a JSON path)."""
        inner = f"{prefix}.{self.field}" if self.field else prefix
        return SpecError(inner, self.reason)


class BuildError(NasError, ValueError):
    """A network that cannot be built as asked (a seed torch does not take), or a model whose
    spec is unknown because ``nas.build_model`` did not build it."""


class ExportError(NasError, ValueError):
    """An export that could not be done or did not reproduce the model."""


# --------------------------------------------------------------------------- data and accuracy
class DataError(NasError, ValueError):
    """A data source that cannot be read; the message names the path and what was expected."""


class EstimatorError(NasError, ValueError):
    """An accuracy estimator that cannot be set up as asked: a training recipe, a device, a
    zero-cost proxy, a supernet checkpoint, or a network outside the supernet's space."""


# --------------------------------------------------------------------------- latency
class LatencyError(NasError, ValueError):
    """A latency measurement that cannot be set up as asked (backend, threads, batch,
    resolution, rounds)."""


class TableError(LatencyError):
    """A table file that cannot be used (corrupted, wrong format or version)."""


class TableMismatch(TableError):
    """A valid table, but measured on another device, backend or torch version."""


class MissingLayers(LatencyError):
    """Some layers of the specs are not in the latency table."""

    def __init__(self, keys: list[str]):
        self.keys = keys
        super().__init__(f"{len(keys)} layer(s) are not in the latency table (first: {keys[0]}); "
                         f"profile them with `nas latency profile`")


# --------------------------------------------------------------------------- search
class BudgetError(NasError, ValueError):
    """A latency budget that cannot be read (``60ms``, ``0.06s``), or one that no network of
    the space meets."""


class RewardError(NasError, ValueError):
    """An unknown reward preset, or reward settings out of their range."""


class StrategyError(NasError, ValueError):
    """An unknown search strategy, or settings (a seed architecture, options) it cannot
    take."""


class RunError(NasError, ValueError):
    """A run (search, ``reproduce --search``) that cannot start or continue as asked."""


class ResumeMismatch(RunError):
    """The stored run was made with other settings; it cannot be continued."""


class RunLocked(NasError, ValueError):
    """Another process is writing to the same run directory (or table)."""


# --------------------------------------------------------------------------- NetAdapt
class NetAdaptError(NasError, ValueError):
    """Bad settings or a run directory that cannot be used; the message says what to do."""


class PruneError(NasError, ValueError):
    """A network NetAdapt cannot prune, or a proposal that does not fit the network."""


# --------------------------------------------------------------------------- messages
_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def first_line(exc: BaseException, limit: int = 200, *, with_type: bool = False) -> str:
    """The first line of ``exc``'s message, without terminal colours and at most ``limit``
    characters: errors from torch can span many lines. ``with_type`` prefixes the class name
    (``UnpicklingError: ...``); an empty message gives the class name alone."""
    lines = _COLOURS.sub("", str(exc)).strip().splitlines()
    if with_type:
        text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    else:
        text = lines[0].strip() if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."
