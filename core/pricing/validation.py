"""A call's names and token counts, checked before pricing, each refusal naming the field."""

from __future__ import annotations

import unicodedata

from core.pricing.rates import MAX_TOKENS, PricingError, Usage, normalize_provider


def validate_tokens(value: object, field_name: str) -> int:
    """A token count: a whole number from 0 to 10^12 (not a bool, not a float)."""
    if isinstance(value, bool):
        raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
    if isinstance(value, float):
        if not value.is_integer():
            raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.lstrip("-").isdigit()):
            raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
        value = int(text)
    if not isinstance(value, int):
        raise PricingError(f"{field_name}: {value!r} is not a whole number of tokens")
    if value < 0:
        raise PricingError(f"{field_name}: {value} is negative")
    if value > MAX_TOKENS:
        raise PricingError(f"{field_name}: {value} is above the limit of {MAX_TOKENS:,} tokens")
    return value


def validate_usage(
    input_tokens: object,
    output_tokens: object,
    cached_input_tokens: object = 0,
    cache_write_tokens: object = 0,
    cache_write_1h_tokens: object = 0,
    reasoning_tokens: object = 0,
    web_search_calls: object = 0,
) -> Usage:
    """Every count checked, and the parts checked against their wholes, naming the fields."""

    def count(value: object, name: str) -> int:
        return validate_tokens(0 if value is None or value == "" else value, name)

    usage = Usage(
        validate_tokens(input_tokens, "input_tokens"),
        validate_tokens(output_tokens, "output_tokens"),
        count(cached_input_tokens, "cached_input_tokens"),
        count(cache_write_tokens, "cache_write_tokens"),
        count(cache_write_1h_tokens, "cache_write_1h_tokens"),
        count(reasoning_tokens, "reasoning_tokens"),
        count(web_search_calls, "web_search_calls"),
    )
    parts = usage.cached_input_tokens + usage.cache_write_tokens + usage.cache_write_1h_tokens
    if parts > usage.input_tokens:
        named = [
            f"{name} {value}"
            for name, value in (
                ("cached_input_tokens", usage.cached_input_tokens),
                ("cache_write_tokens", usage.cache_write_tokens),
                ("cache_write_1h_tokens", usage.cache_write_1h_tokens),
            )
            if value
        ]
        if len(named) == 1 and usage.cached_input_tokens:
            raise PricingError(
                f"cached_input_tokens: {usage.cached_input_tokens} is more than input_tokens ({usage.input_tokens}); "
                "cached tokens are part of the input"
            )
        raise PricingError(
            f"{' + '.join(n.split()[0] for n in named)}: {' + '.join(n.split()[1] for n in named)} = {parts} is more "
            f"than input_tokens ({usage.input_tokens}); cache reads and writes are part of the input"
        )
    if usage.reasoning_tokens > usage.output_tokens:
        raise PricingError(
            f"reasoning_tokens: {usage.reasoning_tokens} is more than output_tokens ({usage.output_tokens}); "
            "reasoning tokens are part of the output"
        )
    return usage


def validate_call(
    provider: str, model: str, input_tokens: object, output_tokens: object, cached_input_tokens: object = 0
) -> tuple[str, str, int, int, int]:
    """Check a call's names and token counts; returns them cleaned."""
    provider_clean = _name(provider, "provider")
    model_clean = _name(model, "model")
    usage = validate_usage(input_tokens, output_tokens, 0 if cached_input_tokens is None else cached_input_tokens)
    return (
        normalize_provider(provider_clean),
        model_clean,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
    )


NAME_LIMITS = {"provider": 100, "model": 300, "user": 200, "request_id": 200, "project": 200}


def _name(value: object, field_name: str) -> str:
    if not isinstance(value, str):
        raise PricingError(f"{field_name}: {value!r} is not text")
    text = value.strip()
    if not text:
        raise PricingError(f"{field_name}: empty value")
    limit = NAME_LIMITS[field_name]
    if len(text) > limit:
        raise PricingError(f"{field_name}: {text[:40]!r}... is {len(text)} characters, over the limit of {limit}")
    if any(ord(ch) < 32 or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise PricingError(f"{field_name}: {text[:60]!r} contains control characters or invalid bytes")
    bad = unsafe_character(text)
    if bad:
        raise PricingError(f"{field_name}: {text[:60]!r} contains {bad}")
    return text


# Bidi controls reorder what a person reads ("admin\u202egnp.exe" shows as "adminexe.png"):
# U+200E, U+200F, U+202A-U+202E, U+2066-U+2069.
BIDI_CONTROLS = frozenset({0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})


def unsafe_character(text: str) -> str | None:
    """What makes a name unsafe to show: a control character (Unicode Cc) or a bidi control; ``None`` if none."""
    if text.isascii():
        return None if text.isprintable() else f"a control character (U+{_first_control(text):04X})"
    for ch in text:
        code = ord(ch)
        if code in BIDI_CONTROLS:
            return f"a bidi control character (U+{code:04X})"
        if unicodedata.category(ch) == "Cc":
            return f"a control character (U+{code:04X})"
    return None


def _first_control(text: str) -> int:
    return next(ord(ch) for ch in text if not ch.isprintable())


def clean_name(value: object, field_name: str) -> str:
    """Public check for user / request_id style names (same rules as provider and model)."""
    return _name(value, field_name)
