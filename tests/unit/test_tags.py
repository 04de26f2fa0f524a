"""Tags on a call: what is accepted, what is refused, and the message a user sees."""

from __future__ import annotations

import pytest

from core.recording.tags import MAX_TAG_LENGTH, MAX_TAGS, TagError, parse_tags, union_tags


def refused(value: object, **kwargs: str) -> str:
    with pytest.raises(TagError) as caught:
        parse_tags(value, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_json_list_keeps_tags_in_order_once_each_and_case_sensitive() -> None:
    tags = ["feature:summarize", "env:prod", "nightly", "env:prod", "Nightly", "feature:summarize"]
    assert parse_tags(tags) == ("feature:summarize", "env:prod", "nightly", "Nightly")
    assert parse_tags(("a", "b")) == ("a", "b")


def test_a_csv_cell_is_split_on_semicolons_and_trimmed() -> None:
    assert parse_tags("feature:summarize; env:prod ;nightly") == ("feature:summarize", "env:prod", "nightly")
    assert parse_tags("a;a;A") == ("a", "A")


@pytest.mark.parametrize("nothing", [None, [], (), "", "   "])
def test_no_tags_is_an_empty_tuple(nothing: object) -> None:
    assert parse_tags(nothing) == ()


def test_twenty_tags_are_accepted_and_twenty_one_refused() -> None:
    twenty = [f"t{i}" for i in range(MAX_TAGS)]
    assert parse_tags(twenty) == tuple(twenty)
    assert refused([f"t{i}" for i in range(23)]) == "tags: at most 20 tags, got 23"
    assert refused(";".join(f"t{i}" for i in range(21))) == "tags: at most 20 tags, got 21"


def test_the_limit_counts_distinct_tags() -> None:
    assert len(parse_tags([f"t{i % 20}" for i in range(40)])) == 20


def test_a_tag_of_100_characters_is_accepted_and_101_refused() -> None:
    assert parse_tags(["x" * MAX_TAG_LENGTH]) == ("x" * 100,)
    assert parse_tags(["é" * 100]) == ("é" * 100,)  # characters, not bytes
    message = refused(["ok", "y" * 101])
    assert message.startswith("tags[1]: at most 100 characters, got 101: 'yyy")
    assert len(message) < 120  # the value is shortened, the line stays readable


def test_a_tag_that_is_not_a_string_is_named_with_its_index() -> None:
    assert refused(["a", "b", "c", 12]) == "tags[3]: not a string: 12"
    assert refused([True]) == "tags[0]: not a string: True"
    assert refused([None]) == "tags[0]: not a string: None"
    assert refused([["nested"]]) == "tags[0]: not a string: ['nested']"


@pytest.mark.parametrize("value", [12, {"a": 1}, 1.5, b"a;b"])
def test_tags_that_are_not_a_list_or_text_are_refused(value: object) -> None:
    assert refused(value) == f"tags: not a list of strings: {value!r}"


def test_an_empty_tag_is_refused() -> None:
    assert refused([""]) == "tags[0]: empty tag"
    assert refused(["a", "  "]) == "tags[1]: empty tag: '  '"
    assert refused("a;;b") == "tags[1]: empty tag"
    assert refused("a;b;") == "tags[2]: empty tag"


@pytest.mark.parametrize(
    ("char", "kind"),
    [
        ("\x00", "control character U+0000"),
        ("\x07", "control character U+0007"),
        ("\n", "control character U+000A"),
        ("\x7f", "control character U+007F"),
        ("\x85", "control character U+0085"),
        ("\u200e", "bidi control U+200E"),
        ("\u200f", "bidi control U+200F"),
        ("\u202a", "bidi control U+202A"),
        ("\u202e", "bidi control U+202E"),
        ("\u2066", "bidi control U+2066"),
        ("\u2069", "bidi control U+2069"),
    ],
)
def test_control_and_bidi_characters_are_refused(char: str, kind: str) -> None:
    message = refused(["fine", f"env{char}prod"])
    assert message == f"tags[1]: contains the {kind}: {f'env{char}prod'!r}"


def test_other_unicode_is_accepted() -> None:
    tags = ["équipe:café", "チーム", "👩\u200d💻", "a b"]  # ZWJ (Cf, not a bidi control) and an inner space
    assert parse_tags(tags) == tuple(tags)


def test_the_field_name_is_the_callers() -> None:
    assert refused([3], field="request_tags") == "request_tags[0]: not a string: 3"
    with pytest.raises(TagError, match=r"^metadata\.tags: at most 20 tags, got 21$"):
        parse_tags([str(i) for i in range(21)], field="metadata.tags")


def test_union_keeps_the_order_of_first_appearance_across_sources() -> None:
    assert union_tags(("request_tags", ["a", "b"]), ("metadata.tags", ["b", "c", "a"])) == ("a", "b", "c")
    assert union_tags(("spendboard.tags", None), ("langfuse.trace.tags", ("x",))) == ("x",)
    assert union_tags(("spendboard.tags", None), ("langfuse.trace.tags", None)) == ()


def test_union_applies_the_limit_to_the_union() -> None:
    first = [f"a{i}" for i in range(12)]
    second = [f"b{i}" for i in range(12)]
    with pytest.raises(TagError) as caught:
        union_tags(("request_tags", first), ("metadata.tags", second))
    assert str(caught.value) == "request_tags + metadata.tags: at most 20 tags, got 24"
    # overlapping sources under the limit together are fine
    assert len(union_tags(("request_tags", first), ("metadata.tags", first[:8]))) == 12


def test_union_names_the_source_of_a_bad_tag() -> None:
    with pytest.raises(TagError) as caught:
        union_tags(("spendboard.tags", ["ok"]), ("langfuse.trace.tags", ["fine", ""]))
    assert str(caught.value) == "langfuse.trace.tags[1]: empty tag"
