"""ARRAY<STRING> features: multi-hot encoding, and ML.NGRAMS in TRANSFORM.

Theory of operation. BigQuery ML's automatic preprocessing multi-hot encodes every ARRAY column
that is not numeric: "a separate feature for each unique element in the ARRAY"
(https://cloud.google.com/bigquery/docs/auto-preprocessing, Feature transformations), and its
imputation table says of one-hot/multi-hot encoded columns: "NULL values in the encoded columns
are mapped to an additional category that is added to the data. Previously unseen data is
assigned a weight of 0 during prediction." The indicators are not standardized (standardization
is for numeric columns). ``ML.NGRAMS(array, range [, separator])`` returns the n-grams of the
array, n from range's low to high, each n-gram its tokens joined by the separator (' ' by
default) (https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-ngrams);
as a TRANSFORM output, an ARRAY<STRING>, it is multi-hot encoded the same way.

So sqlml does:
- the vocabulary is every distinct value (n-gram) seen in training, sorted; a NULL array, or a
  NULL element (an n-gram with a NULL token is NULL, as ``'a' || NULL``), is the NULL category,
  one more indicator when training saw one;
- at scoring a value training never saw adds nothing (weight 0); a NULL array or element sets the
  NULL indicator when there is one (else nothing); an empty array sets nothing.
An n-gram is compared as its joined string, as BigQuery's ARRAY<STRING> output is.

Each vocabulary entry becomes an input column of its own at the input boundary, as the elements
of an ARRAY of numbers do (sqlml.ml.nested): a 0/1 DOUBLE, read from the array through the path
``(column, 'ngrams', low, high, separator, value)`` (value None: the NULL category). Training
computes it from Arrow (:func:`values`), scoring as SQL (:func:`sql_ref`: DuckDB list functions,
PostgreSQL arrays); every scoring feed (compiled SQL, the DuckDB UDF, PostgreSQL's batch scorer)
passes one number per input, so the array itself never reaches the ONNX graph, whose inputs are
the indicators. No padding exists anywhere, so no pad can form or match an n-gram.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from sqlglot import exp

from sqlml import errors

NGRAMS = "ngrams"  # path[1] of an indicator
MAX_N = 10  # the largest n-gram size (BigQuery documents no bound; each n is a term of the SQL)
Grams = list[str | None] | None


def path(source: str, low: int, high: int, separator: str, value: str | None) -> tuple[Any, ...]:
    return (source, NGRAMS, low, high, separator, value)


def is_indicator(column_path: Sequence[Any]) -> bool:
    return len(column_path) == 6 and column_path[1] == NGRAMS


def is_string_list(arrow_type: pa.DataType) -> bool:
    listed = (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
    )
    if not listed:
        return False
    inner = arrow_type.value_type
    return bool(pa.types.is_string(inner) or pa.types.is_large_string(inner))


def name(prefix: str, value: str | None) -> str:
    """An indicator's input name: ``tags["red"]``, ``tags[NULL]`` (never two alike)."""
    return f"{prefix}[{'NULL' if value is None else json.dumps(value, ensure_ascii=False)}]"


def merged(rows: list[dict[str, Any]], paths: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Consecutive feature rows of one array's indicators as one ``multi_hot`` row (one column
    per category, as a one-hot row: sqlml.functions.layout)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        found = paths.get(str(row["column"]))
        if found is None or not is_indicator(found):
            out.append(row)
            continue
        last = out[-1] if out else {}
        if last.get("encoding") == "multi_hot" and last["column"] == found[0]:
            last["categories"].append(found[5])
            continue
        out.append({"column": found[0], "encoding": "multi_hot", "categories": [found[5]]})
    return out


# -- n-grams -------------------------------------------------------------------------------------


def ngrams(tokens: Sequence[str | None] | None, low: int, high: int, separator: str) -> Grams:
    """ML.NGRAMS of one array: NULL for a NULL array, an n-gram with a NULL token NULL."""
    if tokens is None:
        return None
    out: list[str | None] = []
    for n in range(low, high + 1):
        for i in range(len(tokens) - n + 1):
            part = tokens[i : i + n]
            out.append(None if any(t is None for t in part) else separator.join(part))  # type: ignore[arg-type]
    return out


def vocabulary(column: pa.ChunkedArray, low: int, high: int, separator: str) -> list[str | None]:
    """The values seen in training, sorted, then None when the NULL category was seen."""
    seen: set[str] = set()
    null = False
    for tokens in column.to_pylist():
        grams = ngrams(tokens, low, high, separator)
        if grams is None:
            null = True
            continue
        null = null or None in grams
        seen.update(g for g in grams if g is not None)
    return [*sorted(seen), *([None] if null else [])]


def indicators(
    source: str, prefix: str, column: pa.ChunkedArray, low: int, high: int, separator: str
) -> list[tuple[str, tuple[Any, ...]]]:
    """(input name, path) per vocabulary entry; 22000 when training saw no value at all."""
    if not is_string_list(column.type):
        raise errors.DatatypeMismatch(
            f"column {source} is {column.type}: multi-hot encoding and ML.NGRAMS take an"
            " ARRAY<STRING>"
        )
    found = vocabulary(column, low, high, separator)
    if not found:
        raise errors.UnusableTrainingData(
            f"column {source} has no values to encode: its arrays are all empty"
            + (f" or shorter than {low}" if low > 1 else "")
        )
    return [(name(prefix, v), path(source, low, high, separator, v)) for v in found]


# -- Arrow ---------------------------------------------------------------------------------------

# (the column itself is kept with its sets: its buffers stay allocated, so no other data can
# come to have their addresses)
_memo: list[tuple[pa.ChunkedArray, tuple[Any, ...], list[set[str | None] | None]]] = []


def _identity(source: pa.ChunkedArray) -> tuple[Any, ...]:
    """Where the column's data is (its buffers' addresses): the same column read again, as
    ``table.column(name)`` makes a new object each time, is the same data."""
    return tuple(
        (len(chunk), chunk.offset, *(b.address if b is not None else 0 for b in chunk.buffers()))
        for chunk in source.chunks
    )


def _grams_of(source: pa.ChunkedArray, key: tuple[Any, ...]) -> list[set[str | None] | None]:
    """Each row's n-grams as a set, computed once per source column and n-gram settings (every
    indicator of a vocabulary reads the same sets; the last ones are kept)."""
    known = (_identity(source), key)
    for _, seen, grams in list(_memo):
        if seen == known:
            return grams
    low, high, separator = key
    rows = [ngrams(t, low, high, separator) for t in source.to_pylist()]
    grams = [None if r is None else set(r) for r in rows]
    _memo[:] = [(source, known, grams)]
    return grams


def values(source: pa.ChunkedArray, column_path: Sequence[Any]) -> pa.ChunkedArray:
    """The indicator's 0/1 per row of ``source`` (the array column)."""
    _, _, low, high, separator, value = column_path
    grams = _grams_of(source, (int(low), int(high), str(separator)))
    if value is None:
        hits = [1.0 if g is None or None in g else 0.0 for g in grams]
    else:
        hits = [1.0 if g is not None and value in g else 0.0 for g in grams]
    return pa.chunked_array([pa.array(hits, type=pa.float64())])


def arrow_type_ok(arrow_type: pa.DataType) -> bool:
    return bool(pa.types.is_null(arrow_type)) or is_string_list(arrow_type)


# -- SQL -----------------------------------------------------------------------------------------
# Every name a lambda or subquery binds differs by n (``__sqlml_i2``): the compiled SQL's common
# subexpressions are lifted out by structure (sqlml.cse), and a subtree holding a bound name
# must never be shared across two scopes.


def sql_ref(column_path: Sequence[Any], source: exp.Expr, dialect: str) -> exp.Expr:
    """1.0 when the row's array (its n-grams) holds the value, else 0.0; never NULL."""
    _, _, low, high, separator, value = column_path
    sizes = range(int(low), int(high) + 1)
    if value is None:
        tests = [_has_null(source, n, str(separator), dialect) for n in sizes]
        tests.insert(0, exp.Is(this=source.copy(), expression=exp.Null()))
    else:
        tests = [_has(source, n, str(separator), str(value), dialect) for n in sizes]
    condition = tests[0]
    for test in tests[1:]:
        condition = exp.Or(this=condition, expression=test)
    one, zero = exp.Literal.number("1.0"), exp.Literal.number("0.0")
    return exp.case().when(condition, one).else_(zero)


def _has(source: exp.Expr, n: int, separator: str, value: str, dialect: str) -> exp.Expr:
    literal = exp.Literal.string(value)
    if dialect == "postgres":  # (a function, not '= ANY (...)': its argument may be lifted)
        return _pg_position(_pg_grams(source, n, separator), literal)
    return exp.Anonymous(
        this="list_contains", expressions=[_duck_grams(source, n, separator), literal]
    )


def _pg_position(grams: exp.Expr, value: exp.Expr) -> exp.Expr:
    """``array_position(a, v) IS NOT NULL``: compares with IS NOT DISTINCT FROM, so it finds
    NULL too; false for a NULL array."""
    position = exp.Anonymous(this="array_position", expressions=[grams, value])
    return exp.Not(this=exp.Is(this=position, expression=exp.Null()))


def _has_null(source: exp.Expr, n: int, separator: str, dialect: str) -> exp.Expr:
    if dialect == "postgres":
        return _pg_position(_pg_grams(source, n, separator), exp.Null())
    var = exp.to_identifier(f"__sqlml_g{n}", quoted=True)
    is_null = exp.Lambda(
        this=exp.Is(this=exp.column(var.copy()), expression=exp.Null()), expressions=[var]
    )
    flags = exp.Anonymous(
        this="list_transform", expressions=[_duck_grams(source, n, separator), is_null]
    )
    return exp.Anonymous(this="list_contains", expressions=[flags, exp.true()])


def _joined(source: exp.Expr, i: exp.Expr, n: int, separator: str) -> exp.Expr:
    """``a[i] || sep || a[i + 1] ...``: NULL when a token is (as BigQuery's || and ML.NGRAMS's
    NULL-token n-gram here)."""
    out: exp.Expr = _at(source, i.copy(), 0)
    for k in range(1, n):
        out = exp.DPipe(this=out, expression=exp.Literal.string(separator), safe=False)
        out = exp.DPipe(this=out, expression=_at(source, i.copy(), k), safe=False)
    return out


def _at(source: exp.Expr, i: exp.Expr, k: int) -> exp.Expr:
    index = i if k == 0 else exp.Add(this=i, expression=exp.Literal.number(k))
    return exp.Bracket(this=source.copy(), expressions=[index], offset=1)


def _duck_grams(source: exp.Expr, n: int, separator: str) -> exp.Expr:
    """DuckDB: the array itself (n = 1), else ``list_transform(range(1, len(a) - n + 2),
    lambda i: a[i] || sep || ...)`` (NULL for a NULL array)."""
    if n == 1:
        return source.copy()
    var = exp.to_identifier(f"__sqlml_i{n}", quoted=True)
    stop = exp.Add(
        this=exp.Anonymous(this="len", expressions=[source.copy()]),
        expression=exp.Literal.number(2 - n),
    )
    starts = exp.Anonymous(this="range", expressions=[exp.Literal.number(1), stop])
    body = _joined(source, exp.column(var.copy()), n, separator)
    return exp.Anonymous(
        this="list_transform", expressions=[starts, exp.Lambda(this=body, expressions=[var])]
    )


def _pg_grams(source: exp.Expr, n: int, separator: str) -> exp.Expr:
    """PostgreSQL: the array itself (n = 1), else ``ARRAY(SELECT a[i] || sep || ... FROM
    generate_subscripts(a, 1) AS g(i) WHERE i <= array_upper(a, 1) - n + 1)`` (any lower
    bound; empty for a NULL array, which the NULL test reads first)."""
    if n == 1:
        return source.copy()
    alias, var = f"__sqlml_g{n}", f"__sqlml_i{n}"
    i = exp.column(var, table=alias, quoted=True)
    upper = exp.Anonymous(this="array_upper", expressions=[source.copy(), exp.Literal.number(1)])
    last = exp.Sub(this=upper, expression=exp.Literal.number(n - 1))
    subscripts = exp.Table(
        this=exp.Anonymous(
            this="generate_subscripts", expressions=[source.copy(), exp.Literal.number(1)]
        ),
        alias=exp.TableAlias(
            this=exp.to_identifier(alias, quoted=True),
            columns=[exp.to_identifier(var, quoted=True)],
        ),
    )
    select = (
        exp.select(_joined(source, i, n, separator))
        .from_(subscripts)
        .where(exp.LTE(this=i.copy(), expression=last))
    )
    return exp.Array(expressions=[select])
