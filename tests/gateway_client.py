"""The engine conformance suite through the gateway: sqlml.Connection's face (``execute`` ->
cursor) over psycopg 3 connected to ``sqlml serve``, so that every test that takes ``con`` also
runs as a wire client would run it: the extended protocol, server-side parameters ($n), the
gateway's type encoding, errors as ErrorResponses with their SQLSTATE.

What a wire client sees differs from sqlml.connect's Python values in one place only, and this
module says so instead of hiding it: ML.PREDICT's array-of-struct columns (``predicted_<label>
_probs``, k-means' ``nearest_centroids_distance``).

- Over PostgreSQL they are arrays of sqlml's composite types (sqlml.label_prob_bool, ...), which
  a psycopg 3 client registers as any composite (``register_composite``, done here at connect,
  as docs/gateway.md shows): named fields, typed values.
- Over DuckDB they arrive as anonymous record arrays, which carry no field names; psycopg reads
  them as tuples of text. They are given back their BigQuery ML field names and types here (the
  label's type is the type of ``predicted_<label>``).

Either way the tests then compare the same values with the same scikit-learn references.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from typing import Any

import psycopg
import pyarrow as pa
from psycopg.types.composite import CompositeInfo, register_composite

from sqlml import errors
from sqlml.engines import placeholders
from sqlml.engines.pgtypes import COMPOSITES

# Field names of BigQuery ML's array-of-struct outputs, by column name suffix.
_STRUCT_FIELDS = {
    "_probs": ("label", "prob"),
    "nearest_centroids_distance": ("centroid_id", "distance"),
}
_TRUE, _FALSE = ("t", "true"), ("f", "false")


class GatewayCursor:
    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor
        self.description = cursor.description
        self.rowcount = cursor.rowcount
        self._rows: list[tuple[Any, ...]] | None = None

    def _all(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            rows = self._cursor.fetchall() if self.description is not None else []
            self._rows = [self._typed(row) for row in rows]
        return self._rows

    def _typed(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        assert self.description is not None
        names = [column.name for column in self.description]
        out = list(row)
        for i, name in enumerate(names):
            fields = next((f for s, f in _STRUCT_FIELDS.items() if name.endswith(s)), None)
            if fields is None or out[i] is None:
                continue
            label_column = name[: -len("_probs")] if name.endswith("_probs") else None
            label = out[names.index(label_column)] if label_column in names else None
            out[i] = [_struct(fields, element, label) for element in out[i]]
        return tuple(out)

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._all(), []
        return rows

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._all()
        return rows.pop(0) if rows else None

    def fetch_arrow_table(self) -> pa.Table:
        assert self.description is not None
        names = [column.name for column in self.description]
        rows = self.fetchall()
        return pa.table({n: pa.array([r[i] for r in rows]) for i, n in enumerate(names)})


def _struct(fields: tuple[str, str], element: Any, label: Any) -> dict[str, Any]:
    """One element as the struct sqlml.connect gives: a registered composite's fields as they
    are; a (text, text) anonymous record's label typed like the predicted label, the number as
    a float."""
    if hasattr(element, "_asdict"):
        return dict(element._asdict())
    first, second = element
    if fields[0] == "label":
        key: Any = _like(first, label)
    else:
        key = int(first)
    return {fields[0]: key, fields[1]: None if second is None else float(second)}


def _like(text: str | None, example: Any) -> Any:
    if text is None:
        return None
    if isinstance(example, bool):
        return text in _TRUE if text in _TRUE + _FALSE else text
    if isinstance(example, int):
        return int(text)
    if isinstance(example, float | decimal.Decimal):
        return float(text)
    return text


class GatewayConnection:
    """What the conformance tests use of sqlml.Connection: ``execute(sql, params)``."""

    def __init__(self, port: int) -> None:
        self.raw = psycopg.connect(
            host="127.0.0.1", port=port, dbname="shop", user="conformance", autocommit=True
        )
        for name in COMPOSITES:  # PostgreSQL's; the DuckDB gateway's catalog has none
            info = CompositeInfo.fetch(self.raw, f"sqlml.{name}")
            if info is not None:
                register_composite(info, self.raw)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> GatewayCursor:
        """``?`` and ``$n`` markers as psycopg's ``%s`` (sqlml's own conversion, the one its
        PostgreSQL engine uses); psycopg sends them as $n parameters of a Parse."""
        cursor = self.raw.cursor()
        text, values = placeholders.to_format(sql, params or [])
        try:
            cursor.execute(text, values if params is not None else None)  # type: ignore[arg-type]
        except psycopg.Error as e:
            raise _translated(e) from e
        return GatewayCursor(cursor)

    def close(self) -> None:
        self.raw.close()


def _translated(e: psycopg.Error) -> errors.Error:
    """The client's error as sqlml's own class for its SQLSTATE (what sqlml.connect raises)."""
    diag = e.diag
    position = diag.statement_position
    return errors.from_sqlstate(
        e.sqlstate,
        diag.message_primary or str(e),
        detail=diag.message_detail,
        hint=diag.message_hint,
        position=int(position) if position else None,
    )
