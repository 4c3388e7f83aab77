"""Sortable rank keys: a card can land between two others without renumbering the column.

Keys use only 0-9 and a-z and are compared as plain strings (byte order and the usual
database collations agree on these characters). A key is an integer part plus a fraction:

* The integer part is a head character followed by n digits, where the head fixes n:
  "i".."z" are the non-negative integers with n = 1, 2, ... 8, 8, 8 digits, and "h".."0"
  the negative ones with n = 1, 2, ... 8, 8, 8, so a bigger head always means a bigger number.
  The last integer digit is never "0". The first key is "i1"; then "i2" .. "iz", "j01" ..
* The fraction is any run of digits not ending in "0", used only when two integers are
  adjacent: between "i4" and "i5" is "i4i".

So no key ends in "0", and there is always room below (and above) any key. Appending after
the last key or prepending before the first steps the integer, so keys grow only with the
logarithm of the column size (100,000 appends end at five characters). Squeezing into one gap
again and again halves the fraction each time, about one character per five inserts; a key
longer than MAX_LENGTH raises ValueError instead, and the caller should spread() the column.

Keys in any other shape (such as the older plain base-36 keys "1", "i", "r4") are still
accepted as bounds: between() then returns a key strictly between them as strings, a
well-formed one whenever one fits.
"""

from __future__ import annotations

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
BASE = len(DIGITS)
MAX_LENGTH = 64  # Applicant.rank is String(64)
MAX_INTEGER_DIGITS = 8
_ZERO_HEAD = 18  # "i": the first non-negative head

_INDEX = {c: i for i, c in enumerate(DIGITS)}


def _width(head: str) -> int:
    """How many digits follow this head in the integer part."""
    i = _INDEX[head]
    return min(i - _ZERO_HEAD + 1 if i >= _ZERO_HEAD else _ZERO_HEAD - i, MAX_INTEGER_DIGITS)


def _smallest(head: str) -> str:
    return head + "0" * (_width(head) - 1) + "1"


def _largest(head: str) -> str:
    return head + "z" * _width(head)


# The very smallest integer is never a key on its own, so there is always room below a key.
_MIN_INTEGER = _smallest(DIGITS[0])
_MAX_INTEGER = _largest(DIGITS[-1])
FIRST = _smallest(DIGITS[_ZERO_HEAD])  # "i1"


def _increment(integer: str) -> str | None:
    """The next integer, or None past the largest."""
    head, digits = integer[0], list(integer[1:])
    for i in reversed(range(len(digits))):
        d = _INDEX[digits[i]] + 1
        if d < BASE:
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = "1" if i == len(digits) - 1 else "0"
    h = _INDEX[head] + 1
    return _smallest(DIGITS[h]) if h < BASE else None


def _decrement(integer: str) -> str | None:
    """The previous integer, or None below the smallest."""
    head, digits = integer[0], list(integer[1:])
    for i in reversed(range(len(digits))):
        d = _INDEX[digits[i]] - 1
        if d >= (1 if i == len(digits) - 1 else 0):
            digits[i] = DIGITS[d]
            return head + "".join(digits)
        digits[i] = "z"
    h = _INDEX[head] - 1
    return _largest(DIGITS[h]) if h >= 0 else None


def _split(key: str) -> tuple[str, str] | None:
    """(integer, fraction) of a well-formed key, or None for any other string."""
    size = 1 + _width(key[0])
    integer, fraction = key[:size], key[size:]
    if len(integer) < size or integer[-1] == "0" or fraction.endswith("0"):
        return None
    if integer == _MIN_INTEGER and not fraction:
        return None
    return integer, fraction


def is_key(key: str) -> bool:
    """Whether key is a well-formed key (the shape this module makes)."""
    return bool(key) and set(key) <= set(DIGITS) and _split(key) is not None


def _midpoint(low: str, high: str | None) -> str:
    """A digit string strictly between low ("" = nothing) and high (None = no bound).

    Works on any digit strings; the result never ends in "0". Raises ValueError when nothing
    fits (high is low followed only by zeros).
    """
    out = []
    i = 0
    while True:
        a = _INDEX[low[i]] if i < len(low) else 0
        if high is None:
            b = BASE
        elif i < len(high):
            b = _INDEX[high[i]]
        else:
            raise ValueError(f"no rank key fits between {low!r} and {high!r}")
        if a == b:
            out.append(DIGITS[a])
        elif b - a > 1:
            out.append(DIGITS[(a + b + 1) // 2])
            return "".join(out)
        elif high is not None and len(high) > i + 1:
            # Adjacent digits, but high goes on: high cut short here is below high.
            out.append(high[i])
            return "".join(out)
        else:
            # Adjacent digits: keep low's, and anything longer stays below high.
            out.append(DIGITS[a])
            high = None
        i += 1


def _between_keys(low: str | None, high: str | None) -> str:
    """The fractional-indexing step, for well-formed bounds."""
    if low is None and high is None:
        return FIRST
    if low is None:
        integer, fraction = _split(high)
        if integer == _MIN_INTEGER:
            return integer + _midpoint("", fraction)
        if fraction:
            return integer
        below = _decrement(integer)
        return below if below != _MIN_INTEGER else below + _midpoint("", None)
    low_integer, low_fraction = _split(low)
    if high is None:
        return _increment(low_integer) or low_integer + _midpoint(low_fraction, None)
    high_integer, high_fraction = _split(high)
    if low_integer == high_integer:
        return low_integer + _midpoint(low_fraction, high_fraction)
    above = _increment(low_integer)
    if above < high:
        return above
    return low_integer + _midpoint(low_fraction, None)


def _ceiling(text: str) -> str | None:
    """The smallest integer key strictly above text (any digit string)."""
    size = 1 + _width(text[0])
    padded = text[:size].ljust(size, "0")
    if padded > text or padded[-1] == "0":
        # Lifting a trailing "0" to "1" gives the first integer above.
        found = padded[:-1] + "1" if padded[-1] == "0" else padded
    else:
        found = _increment(padded)
    if found == _MIN_INTEGER:
        found = _increment(found)
    return found


def _floor(text: str) -> str | None:
    """The largest integer key strictly below text (any digit string)."""
    size = 1 + _width(text[0])
    padded = text[:size].ljust(size, "0")
    if padded < text and padded[-1] != "0":
        found = padded
    else:
        # Below "x0" the largest integer is the one before "x1".
        found = _decrement(padded[:-1] + "1" if padded[-1] == "0" else padded)
    return None if found == _MIN_INTEGER else found


def _shortest_integer(first: str, last: str, prefer_high: bool) -> str:
    """The shortest integer key from first to last (both integers, first <= last)."""
    best = None
    for h in range(_INDEX[first[0]], _INDEX[last[0]] + 1):
        head = DIGITS[h]
        low = first if head == first[0] else _smallest(head)
        high = last if head == last[0] else _largest(head)
        if low == _MIN_INTEGER:
            low = _increment(low)
        pick = high if prefer_high else low
        if best is None or len(pick) < len(best) or (prefer_high and len(pick) == len(best)):
            best = pick
    return best


def _has_integer(key: str) -> bool:
    """Whether key starts with a whole integer part."""
    size = 1 + _width(key[0])
    return len(key) >= size and key[size - 1] != "0"


def _between_any(low: str | None, high: str | None) -> str:
    """A key strictly between two bounds where at least one is not well-formed."""
    first = _ceiling(low) if low is not None else _increment(_MIN_INTEGER)
    last = _floor(high) if high is not None else _MAX_INTEGER
    if first is not None and last is not None and first <= last:
        return _shortest_integer(first, last, prefer_high=low is None)
    # No whole integer fits: try a fraction under the integer part one of the bounds starts with.
    if low is not None and _has_integer(low):
        integer = low[: 1 + _width(low[0])]
        upper = high[len(integer) :] if high is not None and high.startswith(integer) else None
        return integer + _midpoint(low[len(integer) :], upper)
    if high is not None and _has_integer(high) and len(high) > 1 + _width(high[0]):
        integer = high[: 1 + _width(high[0])]
        lower = low[len(integer) :] if low is not None and low.startswith(integer) else ""
        return integer + _midpoint(lower, high[len(integer) :])
    # Nothing well-formed fits at all: any string strictly between will do.
    return _midpoint(low or "", high)


def _check(key: str | None) -> None:
    if key is not None and (not key or not set(key) <= set(DIGITS)):
        raise ValueError(f"not a rank key: {key!r}")


def between(low: str | None, high: str | None) -> str:
    """A key strictly between low and high; None means no bound on that side.

    Raises ValueError when low >= high, when nothing fits, or when the key would be longer
    than MAX_LENGTH (the gap has been split too often: spread() the column again).
    """
    _check(low)
    _check(high)
    if low is not None and high is not None and low >= high:
        raise ValueError(f"rank {low!r} is not below {high!r}")
    if (low is None or _split(low)) and (high is None or _split(high)):
        key = _between_keys(low, high)
    else:
        key = _between_any(low, high)
    if len(key) > MAX_LENGTH:
        raise ValueError(
            f"no rank key of at most {MAX_LENGTH} characters fits between {low!r} and {high!r};"
            " respread the column"
        )
    return key


def after(key: str | None) -> str:
    """A key above key (the first key when None): for appending to a column."""
    return between(key, None)


def before(key: str | None) -> str:
    """A key below key (the first key when None): for putting a card at the top."""
    return between(None, key)


def spread(count: int) -> list[str]:
    """count sorted keys for filling a column in one go: the keys count appends would give."""
    keys = []
    key = FIRST
    for _ in range(count):
        keys.append(key)
        key = _increment(key)
    return keys
