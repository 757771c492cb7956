from __future__ import annotations

from kluis.store.records import ObjectRecord
from kluis.store.statements import UPSERT_OBJECT, object_row, psycopg_style


def test_an_object_row_matches_the_upsert_columns() -> None:
    o = ObjectRecord("v1", "key", "MyKey", "ab" * 16, 1, 2, None, None, None, 9)
    row = object_row(o)
    assert UPSERT_OBJECT.count("?") == len(row) == 15
    assert row[:4] == ("v1", "key", "mykey", "MyKey")  # name_ci: the case-insensitive key


def test_psycopg_style_swaps_every_placeholder() -> None:
    converted = psycopg_style(UPSERT_OBJECT)
    assert "?" not in converted and converted.count("%s") == 15


def test_audit_batches_where_bounds_by_overlap() -> None:
    from kluis.store.statements import audit_batches_where

    assert audit_batches_where(5, None, None) == ("id > ?", [5])
    where, args = audit_batches_where(0, 100, 200)
    assert where == "id > ? AND max_time_ms >= ? AND min_time_ms < ?" and args == [0, 100, 200]


def test_an_audit_row_matches_its_columns() -> None:
    from kluis.store.records import AuditBatch
    from kluis.store.statements import AUDIT_COLUMNS, INSERT_AUDIT_BATCH, audit_batch_row

    row = audit_batch_row(AuditBatch("c", 1, 2, 3, 4, "p", 5, "h", b"[]", 1))
    assert len(row) == len(AUDIT_COLUMNS.split(", ")) == INSERT_AUDIT_BATCH.count("?")
    assert row[AUDIT_COLUMNS.split(", ").index("body")] == b"[]"
