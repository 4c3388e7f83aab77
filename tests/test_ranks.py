"""Rank keys: between() always finds room, spread() fills a column evenly."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plutomi import ranks

# A valid key: base-36 digits, not empty, never ending in "0" (the keys ranks itself makes).
keys = st.text(alphabet=ranks.DIGITS, min_size=1, max_size=12).filter(lambda k: k[-1] != "0")


def valid(key: str) -> bool:
    return bool(key) and set(key) <= set(ranks.DIGITS) and not key.endswith("0")


@given(keys, keys)
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


@given(keys)
def test_between_an_open_end_and_a_key(key):
    below = ranks.between(None, key)
    above = ranks.between(key, None)
    assert below < key < above
    assert valid(below)
    assert valid(above)


def test_between_nothing_is_a_key():
    assert valid(ranks.between(None, None))


@given(keys, keys, st.lists(st.sampled_from(["low", "high", "middle"]), max_size=60))
def test_repeated_inserts_at_the_same_spot_keep_order(a, b, sides):
    """Insert again and again next to the same neighbour: the column stays strictly sorted."""
    if a == b:
        return
    column = sorted([a, b])
    for side in sides:
        if side == "low":  # always just below the upper bound of the first gap
            i = 0
        elif side == "high":  # always just above the lower bound of the last gap
            i = len(column) - 2
        else:
            i = (len(column) - 1) // 2
        key = ranks.between(column[i], column[i + 1])
        assert valid(key)
        column.insert(i + 1, key)
        assert column == sorted(column)
        assert len(set(column)) == len(column)


@pytest.mark.parametrize("edge", ["first", "last"])
def test_many_inserts_at_one_end_and_one_spot(edge):
    column = ranks.spread(3)
    for _ in range(300):
        if edge == "first":
            key = ranks.between(None, column[0])
            column.insert(0, key)
        else:
            key = ranks.between(column[-1], None)
            column.append(key)
        assert valid(key)
    assert column == sorted(column)
    assert len(set(column)) == len(column)

    # Squeezing into one gap again and again (always right above the same card).
    column = ["a", "b"]
    for _ in range(200):
        key = ranks.between(column[0], column[1])
        assert column[0] < key < column[1]
        assert valid(key)
        column.insert(1, key)
    # Each squeeze halves the gap, so keys grow by about one character per five inserts,
    # well within the 64 characters the rank column holds.
    assert max(map(len, column)) <= 64


@settings(max_examples=150)
@given(st.integers(min_value=1, max_value=2000))
def test_spread_is_sorted_unique_and_complete(n):
    spread = ranks.spread(n)
    assert len(spread) == n
    assert spread == sorted(spread)
    assert len(set(spread)) == n
    assert all(valid(key) for key in spread)


def test_spread_every_size_up_to_2000():
    for n in range(1, 2001):
        spread = ranks.spread(n)
        assert len(spread) == n
        assert all(x < y for x, y in itertools.pairwise(spread))
        assert not any(key.endswith("0") or not key for key in spread)


@given(st.integers(min_value=1, max_value=300), st.data())
def test_between_fits_inside_a_spread_column(n, data):
    column = ranks.spread(n)
    i = data.draw(st.integers(min_value=-1, max_value=n - 1))
    low = column[i] if i >= 0 else None
    high = column[i + 1] if i + 1 < n else None
    key = ranks.between(low, high)
    assert valid(key)
    column.insert(i + 1, key)
    assert column == sorted(column)
    assert len(set(column)) == len(column)
