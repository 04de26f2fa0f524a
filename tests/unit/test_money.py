"""Money: exact parsing, the pico-dollar unit, and formatting that keeps tiny amounts visible."""

from decimal import Decimal

import pytest

from core.money import MoneyError, format_per_million, format_usd, from_pico, parse_amount, to_pico, to_text


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("0.0025", "$0.0025"),
        ("0.000003", "$0.000003"),
        ("0", "$0.00"),
        ("0.1", "$0.10"),
        ("12.5", "$12.50"),
        ("1234.565", "$1,234.56"),
        ("0.000000000001", "$0.000000000001"),
    ],
)
def test_format_usd_keeps_small_amounts_visible(amount: str, shown: str) -> None:
    assert format_usd(Decimal(amount)) == shown


def test_unit_prices_read_per_million_tokens() -> None:
    assert format_per_million(Decimal("0.000003")) == "$3.00 / 1M tokens"
    assert format_per_million(Decimal("0.0000000375")) == "$0.0375 / 1M tokens"


def test_pico_round_trip_is_exact() -> None:
    for text in ("0.000000000001", "0.0025", "123456.789012345678", "9223372.036854775807"):
        assert from_pico(to_pico(Decimal(text))) == Decimal(text)
    with pytest.raises(MoneyError, match="12 decimal places"):
        to_pico(Decimal("0.0000000000001"))


def test_decimal_text_never_uses_exponents() -> None:
    assert to_text(Decimal("2.5E-3")) == "0.0025"
    assert to_text(Decimal("1E+3")) == "1000"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "not a number"),
        ("-1", "negative"),
        ("NaN", "not a finite"),
        ("inf", "not a finite"),
        ("", "empty"),
        (0.1, "not a decimal amount"),
        (True, "not a decimal amount"),
        ("0.0000000000001", "12 decimal places"),
        ("1e30", "too large"),
    ],
)
def test_parse_amount_refuses_bad_values_naming_field_and_value(value: object, message: str) -> None:
    with pytest.raises(MoneyError, match=message) as info:
        parse_amount(value, "price")
    assert str(info.value).startswith("price: ")


def test_parse_amount_applies_the_maximum() -> None:
    with pytest.raises(MoneyError, match="sane maximum"):
        parse_amount("5", "price", maximum=Decimal("1"))
    assert parse_amount(" 0.000001 ", "price") == Decimal("0.000001")


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("17.3912", "$17.39"),
        ("0.42932713", "$0.43"),
        ("0.01", "$0.01"),
        ("0.0107", "$0.01"),
        ("0.0025", "$0.0025"),
        ("0.000043219", "$0.000043"),
        ("0.0099999", "$0.01"),
        ("0", "$0.00"),
        ("1234.5678", "$1,234.57"),
        ("-0.42932713", "-$0.43"),
    ],
)
def test_format_total_is_one_rule_per_column(amount: str, shown: str) -> None:
    from core.money import format_total

    assert format_total(Decimal(amount)) == shown
