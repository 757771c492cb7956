from __future__ import annotations

from kluis.store.records import ObjectRecord
from kluis.store.statements import UPSERT_OBJECT, object_row, psycopg_style


def test_an_object_row_matches_the_upsert_columns() -> None:
    o = ObjectRecord("v1", "key", "MyKey", "ab" * 16, 1, 2, None, None, None, 9)
    row = object_row(o)
    assert UPSERT_OBJECT.count("?") == len(row) == 11
    assert row[:4] == ("v1", "key", "mykey", "MyKey")  # name_ci: the case-insensitive key


def test_psycopg_style_swaps_every_placeholder() -> None:
    converted = psycopg_style(UPSERT_OBJECT)
    assert "?" not in converted and converted.count("%s") == 11
