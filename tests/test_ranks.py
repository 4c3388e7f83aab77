"""Rank keys: between() always finds room, appends stay short, old keys still work as bounds."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plutomi import ranks


@st.composite
def keys(draw):
    """A well-formed key: head, integer digits (last one not "0"), fraction not ending in "0"."""
    head = draw(st.sampled_from(ranks.DIGITS))
    width = ranks._width(head)
    digits = draw(st.text(alphabet=ranks.DIGITS, min_size=width - 1, max_size=width - 1))
    last = draw(st.sampled_from(ranks.DIGITS[1:]))
    fraction = draw(st.text(alphabet=ranks.DIGITS, max_size=6).map(lambda f: f.rstrip("0")))
    key = head + digits + last + fraction
    if key == ranks._MIN_INTEGER:  # the one integer that is never a key on its own
        key += "i"
    return key


# Keys the old spread() made: plain base-36 strings that never end in "0" ("1", "i", "r4").
old_keys = st.text(alphabet=ranks.DIGITS, min_size=1, max_size=6).filter(lambda k: k[-1] != "0")


def valid(key: str) -> bool:
    """Well-formed, fits the column, and never ends in "0" (so there is room below)."""
    return (
        ranks.is_key(key)
        and len(key) <= ranks.MAX_LENGTH
        and set(key) <= set(ranks.DIGITS)
        and not key.endswith("0")
    )


def assert_column(column: list[str]) -> None:
    assert all(x < y for x, y in itertools.pairwise(column))  # sorted and unique


@settings(deadline=None)
@given(keys())
def test_generated_keys_are_well_formed(key):
    assert valid(key)


@settings(deadline=None)
@given(keys(), keys())
def test_between_two_keys_is_strictly_between(a, b):
    if a == b:
        with pytest.raises(ValueError):
            ranks.between(a, b)
        return
    low, high = sorted([a, b])
    key = ranks.between(low, high)
    assert low < key < high
    assert valid(key)
    with pytest.raises(ValueError):
        ranks.between(high, low)


@settings(deadline=None)
@given(keys())
def test_there_is_always_room_on_both_sides(key):
    below, above = ranks.before(key), ranks.after(key)
    assert below < key < above
    assert valid(below)
    assert valid(above)
    assert ranks.between(None, key) == below
    assert ranks.between(key, None) == above


def test_an_empty_column_gets_a_first_key():
    assert ranks.between(None, None) == ranks.after(None) == ranks.before(None) == "i1"
    assert valid(ranks.FIRST)


@pytest.mark.parametrize("bad", ["", "I1", "i-1", "i1 "])
def test_strings_outside_the_alphabet_are_refused(bad):
    for low, high in [(bad, None), (None, bad)]:
        with pytest.raises(ValueError):
            ranks.between(low, high)


@settings(deadline=None, max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "prepend", "insert"]),
            st.integers(min_value=0, max_value=10**6),
        ),
        max_size=150,
    )
)
def test_random_operations_keep_the_column_sorted(operations):
    column: list[str] = []
    for operation, where in operations:
        if operation == "append" or not column:
            key = ranks.after(column[-1] if column else None)
            column.append(key)
        elif operation == "prepend":
            key = ranks.before(column[0])
            column.insert(0, key)
        else:  # between two random neighbours (or at an end of a one-card column)
            i = where % (len(column) + 1)
            low = column[i - 1] if i > 0 else None
            high = column[i] if i < len(column) else None
            key = ranks.between(low, high)
            assert (low is None or low < key) and (high is None or key < high)
            column.insert(i, key)
        assert valid(key)
        assert_column(column)


@pytest.mark.parametrize("edge", ["append", "prepend"])
def test_100000_cards_at_one_end_stay_short(edge):
    column = []
    key = None
    for _ in range(100_000):
        key = ranks.after(key) if edge == "append" else ranks.before(key)
        column.append(key)
    if edge == "prepend":
        column.reverse()
    assert_column(column)
    assert not any(key.endswith("0") for key in column)
    # The integer part grows with the log of the count: 2 chars up to 35, 3 up to 1,295, ...
    assert max(map(len, column)) == 5
    assert all(ranks.is_key(key) for key in column[::997])


@pytest.mark.parametrize("side", ["just above low", "just below high"])
def test_squeezing_into_one_gap(side):
    low, high = "i1", "i2"
    keys_made = []
    for _ in range(200):
        key = ranks.between(low, high)
        assert low < key < high
        assert valid(key)
        keys_made.append(key)
        if side == "just above low":
            high = key
        else:
            low = key
    assert len(set(keys_made)) == 200
    # Each squeeze halves the gap: about one character per five inserts.
    assert max(map(len, keys_made)) < ranks.MAX_LENGTH
    # Keep going: at some point there is no room within 64 characters, and between() says so
    # (a caller then spreads the column again) instead of making a key the column refuses.
    count = 200
    with pytest.raises(ValueError, match="respread"):
        while True:
            key = ranks.between(low, high)
            assert len(key) <= ranks.MAX_LENGTH
            count += 1
            if side == "just above low":
                high = key
            else:
                low = key
    assert count > 300


@settings(deadline=None, max_examples=150)
@given(st.integers(min_value=0, max_value=3000))
def test_spread_is_sorted_unique_and_short(n):
    spread = ranks.spread(n)
    assert len(spread) == n
    assert_column(spread)
    assert all(valid(key) for key in spread)
    assert all(len(key) <= 4 for key in spread)


def test_spread_is_what_appending_gives():
    appended = []
    for _ in range(2000):
        appended.append(ranks.after(appended[-1] if appended else None))
    assert ranks.spread(2000) == appended
    assert ranks.spread(5) == ["i1", "i2", "i3", "i4", "i5"]
    assert ranks.after(ranks.spread(35)[-1]) == "j01"


@settings(deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_between_fits_inside_a_spread_column(n, data):
    column = ranks.spread(n)
    i = data.draw(st.integers(min_value=-1, max_value=n - 1))
    low = column[i] if i >= 0 else None
    high = column[i + 1] if i + 1 < n else None
    key = ranks.between(low, high)
    assert valid(key)
    column.insert(i + 1, key)
    assert_column(column)


# --- Keys from before this format --------------------------------------------------------


def old_spread(count: int) -> list[str]:
    """The keys the previous spread() made, as found on applicants created earlier."""
    width = 1
    while 36**width <= count * 4:
        width += 1
    keys = []
    for n in range(1, count + 1):
        value = n * 36**width // (count + 1)
        digits = []
        for _ in range(width):
            value, d = divmod(value, 36)
            digits.append(ranks.DIGITS[d])
        keys.append("".join(reversed(digits)).rstrip("0"))
    return keys


@settings(deadline=None)
@given(st.one_of(old_keys, keys()), st.one_of(old_keys, keys()))
def test_old_keys_are_accepted_as_bounds(a, b):
    if a == b:
        return
    low, high = sorted([a, b])
    try:
        key = ranks.between(low, high)
    except ValueError:
        # Only when nothing at all fits: high is low followed by zeros.
        assert high.startswith(low) and not high[len(low) :].strip("0")
        return
    assert low < key < high
    assert not key.endswith("0")
    assert len(key) <= ranks.MAX_LENGTH


@settings(deadline=None)
@given(old_keys)
def test_old_keys_have_room_on_both_sides(key):
    above = ranks.after(key)
    assert key < above
    assert valid(above)  # a well-formed key, so the next appends are cheap again
    if key.strip("0"):  # nothing sorts below "0", "00", ...; old keys never were
        below = ranks.before(key)
        assert below < key
        assert valid(below)


@settings(deadline=None, max_examples=60)
@given(
    st.integers(min_value=1, max_value=300),
    st.lists(st.tuples(st.sampled_from(["append", "prepend", "insert"]), st.integers(0, 10**6))),
)
def test_an_old_column_keeps_working(n, operations):
    column = old_spread(n)
    for operation, where in operations:
        if operation == "append" or len(column) < 2:
            column.append(ranks.after(column[-1]))
        elif operation == "prepend":
            column.insert(0, ranks.before(column[0]))
        else:
            i = where % (len(column) - 1)
            column.insert(i + 1, ranks.between(column[i], column[i + 1]))
        assert_column(column)
        assert not any(key.endswith("0") for key in column)


@pytest.mark.parametrize("old", ["1", "i", "r", "r4", "zz", "zzb"])
def test_appending_after_an_old_key_is_cheap(old):
    key = old
    for _ in range(2000):
        nxt = ranks.after(key)
        assert key < nxt
        key = nxt
    # Once past the old key, appends step the integer part: at most head + 8 digits.
    assert valid(key)
    assert len(key) <= 1 + ranks.MAX_INTEGER_DIGITS
