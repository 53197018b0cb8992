"""How the report writes a number, a duration and a Markdown table: once, for every section and script."""

from __future__ import annotations


def fmt(x: float, digits: int = 3) -> str:
    """A figure with `digits` significant digits, thousands separated from 1000 up; n/a for a missing one."""
    if x is None:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def fmt_time(seconds: float) -> str:
    """A duration in the unit that keeps it short: µs, ms, s, and minutes from 10 minutes up."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    if seconds < 600:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def table(header: list[str], rows: list[list], align: str | None = None) -> list[str]:
    """A Markdown table's lines; `align` has an "l" or "r" per column (default: the first left, the rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines

