"""Tags on a call: the one validation every entry point shares (DESIGN.md, "Tags and statements").

A call carries up to 20 tags of at most 100 characters (``feature:summarize``,
``env:prod``): a list of strings from JSON, the JSON API, ``track(tags=...)``,
LiteLLM and OTLP, or one ``;``-separated string from a CSV cell. Tags are
case-sensitive; a tag repeated in one call is kept once, in order of first appearance.
"""

from __future__ import annotations

import unicodedata

MAX_TAGS = 20
MAX_TAG_LENGTH = 100
CSV_SEPARATOR = ";"

# Bidi controls that can make a tag display as another one (Trojan Source, CVE-2021-42574):
# LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_SHOWN = 60  # characters of a refused value quoted in a message, so one line stays one line


class TagError(ValueError):
    """Tags that cannot be recorded; the message names the field and the offending value."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _check_tag(tag: object, where: str) -> str:
    """One tag, trimmed of surrounding spaces; refuses a non-string, empty, too long or control-bearing tag."""
    if not isinstance(tag, str):
        raise TagError(f"{where}: not a string: {_shown(tag)}")
    text = tag.strip()
    if not text:
        raise TagError(f"{where}: empty tag" + (f": {_shown(tag)}" if tag else ""))
    if len(text) > MAX_TAG_LENGTH:
        raise TagError(f"{where}: at most {MAX_TAG_LENGTH} characters, got {len(text)}: {_shown(text)}")
    for char in text:
        if char in BIDI_CONTROLS:
            raise TagError(f"{where}: contains the bidi control U+{ord(char):04X}: {_shown(text)}")
        if unicodedata.category(char) == "Cc":
            raise TagError(f"{where}: contains the control character U+{ord(char):04X}: {_shown(text)}")
    return text


def _check_count(tags: tuple[str, ...], field: str) -> tuple[str, ...]:
    if len(tags) > MAX_TAGS:
        raise TagError(f"{field}: at most {MAX_TAGS} tags, got {len(tags)}")
    return tags


def parse_tags(value: object, *, field: str = "tags") -> tuple[str, ...]:
    """The distinct tags of one call, in order of first appearance.

    ``value`` is ``None`` (no tags), a list or tuple of strings (JSON, API, SDKs, OTLP
    string arrays), or one string of ``;``-separated tags (a CSV cell; an empty cell is
    no tags). Each tag is trimmed of surrounding spaces; the limit of 20 counts distinct tags.
    Raises ``TagError`` naming ``field`` (``tags[3]`` for one element) and the value.
    """
    if value is None:
        return ()
    items: list[object]
    if isinstance(value, str):
        if not value.strip():
            return ()
        items = list(value.split(CSV_SEPARATOR))
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise TagError(f"{field}: not a list of strings: {_shown(value)}")
    seen: dict[str, None] = {}
    for index, item in enumerate(items):
        seen.setdefault(_check_tag(item, f"{field}[{index}]"), None)
    return _check_count(tuple(seen), field)


def union_tags(*sources: tuple[str, object]) -> tuple[str, ...]:
    """The union of a payload's tag sources, each given as ``(field, value)``, in order of first appearance.

    For payloads with two places for tags: LiteLLM ``request_tags`` and ``metadata.tags``,
    OTLP ``spendboard.tags`` and ``langfuse.trace.tags``. Each source is checked as
    :func:`parse_tags` checks it (errors name that source), then the 20-tag limit applies
    to the union (the error names the fields joined with ``+``).
    """
    seen: dict[str, None] = {}
    for field, value in sources:
        for tag in parse_tags(value, field=field):
            seen.setdefault(tag, None)
    return _check_count(tuple(seen), " + ".join(field for field, _ in sources) or "tags")
