"""The one escaping helper for Milvus filters (media_search.store.filters).

The round trip through both real Milvus backends is in test_store_contract.py;
these tests pin the rule itself.
"""

from __future__ import annotations

import pytest

from media_search.store.filters import eq, hex_literal, is_in, ne, not_in, quote

HASH = "0123456789abcdef" * 4


def test_quote_plain_text_is_wrapped_in_double_quotes() -> None:
    assert quote("abc") == '"abc"'
    assert quote("") == '""'
    assert quote("it's #1 😀 фото 写真") == '"it\'s #1 😀 фото 写真"'


def test_quote_escapes_backslash_before_double_quote() -> None:
    # A backslash is doubled first; had the quote been escaped first, its new
    # backslash would be doubled too and the quote would end the literal.
    assert quote('a"b') == r'"a\"b"'
    assert quote("a\\b") == r'"a\\b"'
    assert quote('\\"') == r'"\\\""'
    assert quote('"\\') == r'"\"\\"'


def test_quote_writes_newline_cr_and_tab_as_escapes() -> None:
    assert quote("a\nb\rc\td") == r'"a\nb\rc\td"'
    assert "\n" not in quote("x\n") and "\t" not in quote("\tx")


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"])
def test_quote_rejects_other_control_characters(char: str) -> None:
    with pytest.raises(ValueError, match="control characters"):
        quote(f"a{char}b")


def test_hex_literal_accepts_lowercase_hex_only() -> None:
    assert hex_literal(HASH) == f'"{HASH}"'
    for bad in ["", "ABCDEF", "12g4", '" or 1 == 1 or "', "a b", "0x12", "f" * 129, None, 12]:
        with pytest.raises(ValueError, match="lowercase hex"):
            hex_literal(bad)  # type: ignore[arg-type]


def test_eq_ne_is_in_build_expressions() -> None:
    assert eq("content_hash", HASH) == f'content_hash == "{HASH}"'
    assert ne("content_hash", HASH) == f'content_hash != "{HASH}"'
    assert is_in("file_id", ["ab", "cd"]) == 'file_id in ["ab", "cd"]'
    assert is_in("file_id", []) == "file_id in []"
    assert not_in("file_id", ["ab", "cd"]) == 'file_id not in ["ab", "cd"]'


def test_eq_ne_is_in_refuse_user_text_and_bad_fields() -> None:
    with pytest.raises(ValueError):
        eq("path", "/photos/it's.jpg")
    with pytest.raises(ValueError):
        ne("content_hash", 'x" or "1" == "1')
    with pytest.raises(ValueError):
        is_in("file_id", ["ab", "not hex"])
    with pytest.raises(ValueError):
        not_in("file_id", ['ab" or "1" == "1'])
    for field in ["path or 1", "a-b", "1abc", "", "id == 1"]:
        with pytest.raises(ValueError, match="bad field name"):
            eq(field, "ab")
