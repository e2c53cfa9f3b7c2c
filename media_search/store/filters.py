"""The one way a value enters a Milvus filter expression.

Filters carry only values the engine itself generates (hex ids and hashes),
never a path or other user text. ``quote`` implements the escape rule verified
to round-trip on Milvus Lite 3.2 and Milvus 2.3 (templated filters need Milvus
2.5+): wrap in double quotes, escape ``\\`` then ``"``, write newline, CR and
tab as ``\\n``, ``\\r``, ``\\t``, reject other control characters. ``eq``,
``is_in`` and ``not_in`` additionally insist on lowercase hex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["quote", "hex_literal", "eq", "ne", "is_in", "not_in"]

_HEX = re.compile(r"[0-9a-f]{1,128}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def quote(value: str) -> str:
    """A string literal for a Milvus boolean expression."""
    if _CONTROL.search(value):
        raise ValueError("control characters cannot be written in a Milvus filter")
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def hex_literal(value: str) -> str:
    """``quote`` for an engine-generated hex value; anything else is a bug."""
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError(f"filter values must be lowercase hex, got {value!r}")
    return quote(value)


def _field(name: str) -> str:
    if not _FIELD.fullmatch(name):
        raise ValueError(f"bad field name {name!r}")
    return name


def eq(field: str, value: str) -> str:
    return f"{_field(field)} == {hex_literal(value)}"


def ne(field: str, value: str) -> str:
    return f"{_field(field)} != {hex_literal(value)}"


def is_in(field: str, values: Iterable[str]) -> str:
    items = ", ".join(hex_literal(v) for v in values)
    return f"{_field(field)} in [{items}]"


def not_in(field: str, values: Iterable[str]) -> str:
    items = ", ".join(hex_literal(v) for v in values)
    return f"{_field(field)} not in [{items}]"
