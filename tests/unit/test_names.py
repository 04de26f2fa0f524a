"""Model names: the short name strips the organisation and the route."""

from __future__ import annotations

from core.pricing.rates import short_name


def test_short_name_strips_organisation_and_route() -> None:
    assert short_name("openai/gpt-oss-120b:groq") == "gpt-oss-120b"
    assert short_name("gpt-4o") == "gpt-4o"
