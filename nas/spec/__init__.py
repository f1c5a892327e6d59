"""The architecture spec: the one object that flows through the whole project.

:mod:`~nas.spec.parts` holds the stem, block and head specs and their field checks,
:mod:`~nas.spec.text` the compact text codec (over the parts), :mod:`~nas.spec.arch` the whole
network's ``ArchSpec`` (JSON, text form, the paper's table), :mod:`~nas.spec.tables` two
networks' tables side by side. Imports run one way, in that order; all of it is pure Python.
"""

from nas.errors import SpecError
from nas.spec.arch import SPEC_FORMAT, SPEC_VERSION, ArchSpec, TableRow
from nas.spec.parts import (
    ACTIVATIONS,
    BLOCK_KINDS,
    DILATIONS,
    KERNELS,
    MAX_CHANNELS,
    SE_STYLES,
    STRIDES,
    BlockSpec,
    HeadSpec,
    StemSpec,
    make_divisible,
    plain_fields,
    v3_squeeze_channels,
)
from nas.spec.tables import TableDiff, plural, table_diff
from nas.spec.text import format_block

__all__ = ["ACTIVATIONS", "BLOCK_KINDS", "DILATIONS", "KERNELS", "MAX_CHANNELS", "SE_STYLES",
           "SPEC_FORMAT", "SPEC_VERSION", "STRIDES", "ArchSpec", "BlockSpec", "HeadSpec",
           "SpecError", "StemSpec", "TableDiff", "TableRow", "format_block", "make_divisible",
           "plain_fields", "plural", "table_diff", "v3_squeeze_channels"]
