"""The architecture spec package: the spec itself, its compact text form, table diffs."""

from nas.spec.arch import (
    ACTIVATIONS,
    BLOCK_KINDS,
    DILATIONS,
    KERNELS,
    MAX_CHANNELS,
    SE_STYLES,
    SPEC_FORMAT,
    SPEC_VERSION,
    STRIDES,
    ArchSpec,
    BlockSpec,
    HeadSpec,
    SpecError,
    StemSpec,
    TableRow,
    make_divisible,
    plain_fields,
    v3_squeeze_channels,
)
from nas.spec.tables import TableDiff, plural, table_diff
from nas.spec.text import format_block, format_spec, parse_spec

__all__ = ["ACTIVATIONS", "BLOCK_KINDS", "DILATIONS", "KERNELS", "MAX_CHANNELS", "SE_STYLES",
           "SPEC_FORMAT", "SPEC_VERSION", "STRIDES", "ArchSpec", "BlockSpec", "HeadSpec",
           "SpecError", "StemSpec", "TableDiff", "TableRow", "format_block", "format_spec",
           "make_divisible", "parse_spec", "plain_fields", "plural", "table_diff",
           "v3_squeeze_channels"]
