"""A customer as the domain sees it: a name, the rule that picks its calls, a markup.

A rule is ``user:U``, ``project:P`` or ``tag:T`` (an exact, case-sensitive match). A call
matching several customers' rules belongs to the customer added first; a call matching
none is "unmatched" and shown as such, so nothing billable is lost silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.customers.markup import MarkupError, parse_markup
from core.pricing.rates import PricingError
from core.pricing.validation import clean_name
from core.recording.tags import TagError, parse_tags

MATCH_KINDS = ("user", "project", "tag")
NAME_LIMIT = 200


class CustomerError(ValueError):
    """Bad customer input (name, match, markup) or an unknown customer; the message names the field and value."""


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    match_kind: str  # user | project | tag
    match_value: str
    markup: Decimal  # percent; negative for a discount

    @property
    def match(self) -> str:
        return f"{self.match_kind}:{self.match_value}"


@dataclass(frozen=True)
class CustomerSpec:
    """A customer checked and ready to store."""

    name: str
    match_kind: str
    match_value: str
    markup: Decimal


def parse_name(value: object, field: str = "--name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise CustomerError(f"{field}: {value!r} is not a customer name")
    text = value.strip()
    if len(text) > NAME_LIMIT or not text.isprintable():
        raise CustomerError(f"{field}: {value!r} is not a customer name (printable, at most {NAME_LIMIT} characters)")
    return text


def parse_match(value: object, field: str = "--match") -> tuple[str, str]:
    """``"project:acme"`` -> ``("project", "acme")``; the value is checked as a call's user, project or tag is."""
    text = value.strip() if isinstance(value, str) else ""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in MATCH_KINDS or not rest.strip():
        raise CustomerError(f"{field}: {value!r} is not user:U, project:P or tag:T")
    try:
        if kind == "tag":
            (matched,) = parse_tags([rest], field=kind)
        else:
            matched = clean_name(rest, kind)
    except (TagError, PricingError) as exc:
        raise CustomerError(f"{field}: {exc}") from None
    return kind, matched


def validate(name: object, match: object, markup: object = "0") -> CustomerSpec:
    """Every field checked before anything is written; the first bad one is named."""
    clean = parse_name(name)
    kind, value = parse_match(match)
    try:
        percent = parse_markup("0" if markup is None else markup, field="--markup")
    except MarkupError as exc:
        raise CustomerError(str(exc)) from None
    return CustomerSpec(clean, kind, value, percent)
