"""Two networks' paper tables side by side, row by row (``nas netadapt``, ``nas reproduce
--search``)."""

from __future__ import annotations

from dataclasses import dataclass

from nas.spec.arch import ArchSpec, TableRow

__all__ = ["TableDiff", "plural", "table_diff"]


def plural(count: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class TableDiff:
    columns: tuple[str, ...]
    rows: list[tuple[list[str], list[bool]]]  # cells, and which of them differ

    @property
    def changed_rows(self) -> int:
        return sum(any(changed) for _, changed in self.rows)

    def markdown(self) -> str:
        """Markdown; a differing cell reads ``old → new`` in bold."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        for cells, changed in self.rows:
            lines.append("| " + " | ".join(f"**{c}**" if ch else c
                                           for c, ch in zip(cells, changed, strict=True)) + " |")
        return "\n".join(lines) + "\n"


def table_diff(left: ArchSpec, right: ArchSpec) -> TableDiff:
    """Row ``i`` of ``left``'s table against row ``i`` of ``right``'s; a cell that differs reads
    ``left → right``; a row only one network has shows ``-`` for the other."""
    a, b = left.table_rows(), right.table_rows()
    empty = ["-"] * len(TableRow.COLUMNS)
    rows = []
    for i in range(max(len(a), len(b))):
        ca = a[i].cells() if i < len(a) else empty
        cb = b[i].cells() if i < len(b) else empty
        cells = [x if x == y else f"{x} → {y}" for x, y in zip(ca, cb, strict=True)]
        rows.append(([str(i), *cells], [False, *(x != y for x, y in zip(ca, cb, strict=True))]))
    return TableDiff(("#", *TableRow.COLUMNS), rows)
