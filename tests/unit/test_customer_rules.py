"""A customer's name, match rule and markup, checked before anything is written (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.customers.rules import CustomerError, parse_match, validate


@pytest.mark.parametrize(
    "text, expected",
    [
        ("user:alice", ("user", "alice")),
        ("project: acme ", ("project", "acme")),
        ("tag:feature:summarize", ("tag", "feature:summarize")),  # only the first colon separates
        ("tag:Env:Prod", ("tag", "Env:Prod")),  # case kept: tags are case-sensitive
    ],
)
def test_match_rules(text: str, expected: tuple[str, str]) -> None:
    assert parse_match(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("team:a", "--match: 'team:a' is not user:U, project:P or tag:T"),
        ("user:", "--match: 'user:' is not user:U"),
        ("acme", "--match: 'acme' is not user:U"),
        ("tag:" + "x" * 101, "--match: tag[0]: at most 100 characters, got 101"),
        ("user:a\x07b", "--match: user:"),
        (None, "--match: None is not user:U"),
    ],
)
def test_bad_match_names_the_flag(text: object, message: str) -> None:
    with pytest.raises(CustomerError) as caught:
        parse_match(text)
    assert str(caught.value).startswith(message)


def test_validate_checks_every_field() -> None:
    spec = validate(" acme ", "project:acme", "-12.50%")
    assert (spec.name, spec.match_kind, spec.match_value, spec.markup) == ("acme", "project", "acme", Decimal("-12.5"))
    assert validate("b", "user:u", None).markup == Decimal(0)
    for name, match, markup, field in [
        ("", "user:u", "0", "--name"),
        ("x" * 201, "user:u", "0", "--name"),
        ("a", "user:u", "twenty", "--markup"),
        ("a", "user:u", "1e3", "--markup"),
        ("a", "user:u", 20.5, "--markup"),
    ]:
        with pytest.raises(CustomerError, match=f"^{field}: "):
            validate(name, match, markup)
