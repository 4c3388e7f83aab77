"""Sortable rank keys: a card can land between two others without renumbering the column.

Keys are base-36 strings compared as plain strings (the database orders them with its normal
string index). A key never ends in "0", so there is always room below any key.
"""

from __future__ import annotations

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)


def between(low: str | None, high: str | None) -> str:
    """A key strictly between low and high; None means no bound on that side."""
    if low is not None and high is not None and low >= high:
        raise ValueError(f"rank {low!r} is not below {high!r}")
    low = low or ""
    out = []
    i = 0
    while True:
        a = DIGITS.index(low[i]) if i < len(low) else 0
        b = DIGITS.index(high[i]) if high is not None and i < len(high) else BASE
        if a == b:
            out.append(DIGITS[a])
            i += 1
            continue
        mid = (a + b) // 2
        if mid > a:
            out.append(DIGITS[mid])
            return "".join(out)
        # No room at this digit: keep low's digit, and anything longer is below high.
        out.append(DIGITS[a])
        high = None
        i += 1


def spread(count: int) -> list[str]:
    """count keys spaced evenly, for filling a column in one go."""
    width = 1
    while BASE**width <= count * 4:
        width += 1
    keys = []
    for n in range(1, count + 1):
        value = n * BASE**width // (count + 1)
        digits = []
        for _ in range(width):
            value, d = divmod(value, BASE)
            digits.append(DIGITS[d])
        keys.append("".join(reversed(digits)).rstrip("0"))
    return keys
