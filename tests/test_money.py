from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.money import (
    MoneyError,
    Rounding,
    amount_for_litres,
    apply_bps,
    div_round,
    fen_to_yuan_str,
    litres_for_amount,
    prorate,
    split_largest_remainder,
    yuan_str_to_fen,
)

amounts = st.integers(min_value=-(10**12), max_value=10**12)


@given(total=amounts, weights=st.lists(st.integers(0, 10**9), min_size=1, max_size=12))
def test_split_parts_always_sum_to_the_whole(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        if total != 0:
            with pytest.raises(MoneyError):
                split_largest_remainder(total, weights)
        return
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact_numerator = abs(total) * weight
        floor = exact_numerator // sum(weights)
        # every part is within one fen of its exact share, and zero weights get nothing
        assert abs(part) in (floor, floor + 1)
        if weight == 0:
            assert part == 0


@given(st.integers(1, 10**9), st.integers(1, 10**6))
def test_litres_round_down_never_give_unpaid_fuel(amount: int, price: int) -> None:
    ml = litres_for_amount(amount, price)
    assert ml * price <= amount * 1000 < (ml + 1) * price


@given(st.integers(0, 10**9), st.integers(0, 10_000))
def test_bps_down_is_floor_and_up_is_ceiling(amount: int, bps: int) -> None:
    down = apply_bps(amount, bps)
    up = apply_bps(amount, bps, Rounding.UP)
    assert down * 10_000 <= amount * bps <= up * 10_000
    assert up - down in (0, 1)


@given(amounts, st.integers(1, 10**6))
def test_div_round_half_up_is_nearest(n: int, d: int) -> None:
    q = div_round(n, d, Rounding.HALF_UP)
    assert abs(q * d - n) * 2 <= d


@given(st.integers(-(10**12), 10**12))
def test_yuan_strings_round_trip_exactly(fen: int) -> None:
    assert yuan_str_to_fen(fen_to_yuan_str(fen)) == fen


def test_worked_values() -> None:
    assert litres_for_amount(20000, 789) == 25348  # 200.00 yuan at 7.89/L = 25.348 L
    assert amount_for_litres(25348, 789) == 20000
    assert split_largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert split_largest_remainder(-100, [1, 1, 1]) == [-34, -33, -33]
    assert prorate(3000, 1, 3) == 1000
    assert fen_to_yuan_str(-5) == "-0.05"
    with pytest.raises(MoneyError):
        yuan_str_to_fen("1.005")


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_floats_and_other_non_integers_are_refused(bad: object) -> None:
    with pytest.raises(MoneyError):
        apply_bps(bad, 100)  # type: ignore[arg-type]
