"""ONNX's string operators that TRANSFORM's string functions use (sqlml.ml.strings), compiled to
SQL that DuckDB and PostgreSQL compute identically.

- StringNormalizer in the "C" locale (onnxruntime then changes the case of ASCII letters only)
  becomes ``translate(s, 'ABC...Z', 'abc...z')`` (or the reverse): both engines' LOWER and UPPER
  follow their own Unicode tables or the database's LC_CTYPE, translate does not. (On DuckDB an
  ASCII-only string takes LOWER/UPPER, which are exact there and 25x faster than translate.)
  Stop words and other locales are not compiled.
- StringConcat (opset 20) becomes ``a || b``; the graph feeds it NULL-free strings (NULL is the
  sentinel), so SQL's NULL rule for || never applies.
"""

from __future__ import annotations

from sqlglot import exp

from sqlml.ml.strings import LOWER_ASCII, UPPER_ASCII
from sqlml.ml.to_sql import STRING, Expr, Node, NotCompilable, Value, build, elementwise, register


@register("StringNormalizer")
def _normalize(node: Node) -> list[Value]:
    x = node.sym(0)
    if node.attr("stopwords"):
        raise NotCompilable("StringNormalizer with stop words")
    if str(node.attr("locale", "")) not in ("C", "POSIX"):
        raise NotCompilable("StringNormalizer outside the C locale follows the machine's")
    action = str(node.attr("case_change_action", "NONE"))
    if action == "NONE":
        return [x]
    source, target = (UPPER_ASCII, LOWER_ASCII) if action == "LOWER" else (LOWER_ASCII, UPPER_ASCII)

    def change(cell: Expr) -> Expr:
        letters = [exp.Literal.string(source), exp.Literal.string(target)]
        translated = exp.Anonymous(this="translate", expressions=[cell, *letters])
        if node.dialect.name != "duckdb":
            return translated
        # DuckDB's translate is slow (1.75 s per 1M rows here, LOWER 0.07 s); its LOWER and
        # UPPER of an ASCII-only string (as many bytes as characters) change A-Z only.
        ascii_only = exp.EQ(
            this=exp.Anonymous(this="strlen", expressions=[cell.copy()]),
            expression=exp.Length(this=cell.copy()),
        )
        native = (exp.Lower if action == "LOWER" else exp.Upper)(this=cell.copy())
        return exp.case().when(ascii_only, native).else_(translated)

    return [x.like(build(x.cells.shape, lambda index: change(x.cells[index])), dtype=STRING)]


@register("StringConcat")
def _concat(node: Node) -> list[Value]:
    def join(a: Expr, b: Expr) -> Expr:
        return exp.DPipe(this=a, expression=b, safe=True)

    return [elementwise([v for v in node.inputs if v is not None], join, STRING)]
