from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.amounts import fen_to_yuan, positive_fen, yuan_to_fen

FEN = st.integers(min_value=-(10**13), max_value=10**13)


@given(FEN)
def test_fen_to_yuan_and_back_is_exact(fen: int) -> None:
    assert yuan_to_fen(fen_to_yuan(fen)) == fen


@given(FEN)
def test_yuan_text_has_exactly_two_decimals_and_means_the_same_amount(fen: int) -> None:
    text = fen_to_yuan(fen)
    assert len(text.partition(".")[2]) == 2
    assert Decimal(text) * 100 == fen


@given(
    st.integers(min_value=0, max_value=10**9),
    st.integers(min_value=0, max_value=99),
    st.sampled_from(["", "`"]),
    st.booleans(),
)
def test_provider_yuan_strings_parse_exactly(
    whole: int, cents: int, tick: str, one_digit: bool
) -> None:
    # Providers write "12.3", "12.30" or "`12.30"; all mean the same fen.
    text = f"{whole}.{cents // 10}" if one_digit else f"{whole}.{cents:02d}"
    expected = whole * 100 + (cents // 10 * 10 if one_digit else cents)
    assert yuan_to_fen(tick + text) == expected


@pytest.mark.parametrize(
    "text, fen",
    [("0.01", 1), ("-0.06", -6), ("300", 30000), ("1,234.50", 123450), (" `7.10 ", 710)],
)
def test_known_values(text: str, fen: int) -> None:
    assert yuan_to_fen(text) == fen


@pytest.mark.parametrize("text", ["1.005", "abc", "NaN", "Infinity", "", "0.0001"])
def test_refuses_what_is_not_a_whole_number_of_fen(text: str) -> None:
    with pytest.raises(ValueError):
        yuan_to_fen(text)


def test_amounts_we_send_must_be_positive_int_fen() -> None:
    assert positive_fen(1) == 1
    for bad in (0, -5, 1.5, True, "100"):
        with pytest.raises(ValueError):
            positive_fen(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fen_to_yuan(12.5)  # type: ignore[arg-type]
